using System.Text;

namespace PerCpu.Kv.Server;

/// <summary>The commands percpu-kv knows.</summary>
internal enum CommandId : byte
{
    None,
    Ping, Echo, Select, Client, Command, Quit, Config, Hello,
    Get, Set, GetSet, GetDel, SetNx, SetEx, PSetEx, Append, Strlen, Incr, IncrBy, Decr, DecrBy,
    Expire, PExpire, ExpireAt, PExpireAt, Ttl, PTtl, Persist, Type,
    LPush, RPush, LPop, RPop, LRange, LLen,
    Del, Unlink, Exists, MGet, MSet,
    DbSize, FlushDb, FlushAll, Keys, Scan, Info,
}

/// <summary>Where a command runs.</summary>
internal enum Route : byte
{
    /// <summary>On the connection's CPU, touching no shard.</summary>
    Connection,

    /// <summary>On the shard of its first argument.</summary>
    Key,

    /// <summary>Every argument is a key: one piece per key on that key's shard, gathered in order.</summary>
    Keys,

    /// <summary>Key-value pairs (MSET): one piece per pair.</summary>
    Pairs,

    /// <summary>Every shard (DBSIZE, FLUSHDB, KEYS, INFO).</summary>
    All,

    /// <summary>The shard the SCAN cursor names.</summary>
    Scan,
}

/// <summary>A command's static description: Redis's name (lower case, as Redis prints it in errors) and arity.</summary>
/// <param name="Id">The command.</param>
/// <param name="Name">Lower-case name.</param>
/// <param name="Arity">Redis's arity: n means exactly n arguments (the name counts), -n at least n.</param>
/// <param name="Route">Where it runs.</param>
/// <param name="Write">Whether it changes the data set (appended to the shard's log).</param>
internal sealed record CommandInfo(CommandId Id, string Name, int Arity, Route Route, bool Write)
{
    /// <summary>The upper-case name, for case-insensitive matching against the request bytes.</summary>
    public readonly byte[] Upper = Encoding.ASCII.GetBytes(Name.ToUpperInvariant());

    /// <summary>Redis's arity error for this command.</summary>
    public readonly string ArityError = $"ERR wrong number of arguments for '{Name}' command";

    /// <summary>True if <paramref name="argc"/> (the name included) fits the arity.</summary>
    public bool ArityOk(int argc) => Arity >= 0 ? argc == Arity : argc >= -Arity;
}

/// <summary>Finds a command by name without allocating: a bucket per name length, case-insensitive compare.</summary>
internal static class CommandTable
{
    /// <summary>Every command, for COMMAND COUNT and the lookup buckets.</summary>
    public static readonly CommandInfo[] All =
    [
        new(CommandId.Ping, "ping", -1, Route.Connection, false),
        new(CommandId.Echo, "echo", 2, Route.Connection, false),
        new(CommandId.Select, "select", 2, Route.Connection, false),
        new(CommandId.Client, "client", -2, Route.Connection, false),
        new(CommandId.Command, "command", -1, Route.Connection, false),
        new(CommandId.Quit, "quit", -1, Route.Connection, false),
        new(CommandId.Config, "config", -2, Route.Connection, false),
        new(CommandId.Hello, "hello", -1, Route.Connection, false),
        new(CommandId.Get, "get", 2, Route.Key, false),
        new(CommandId.Set, "set", -3, Route.Key, true),
        new(CommandId.GetSet, "getset", 3, Route.Key, true),
        new(CommandId.GetDel, "getdel", 2, Route.Key, true),
        new(CommandId.SetNx, "setnx", 3, Route.Key, true),
        new(CommandId.SetEx, "setex", 4, Route.Key, true),
        new(CommandId.PSetEx, "psetex", 4, Route.Key, true),
        new(CommandId.Append, "append", 3, Route.Key, true),
        new(CommandId.Strlen, "strlen", 2, Route.Key, false),
        new(CommandId.Incr, "incr", 2, Route.Key, true),
        new(CommandId.IncrBy, "incrby", 3, Route.Key, true),
        new(CommandId.Decr, "decr", 2, Route.Key, true),
        new(CommandId.DecrBy, "decrby", 3, Route.Key, true),
        new(CommandId.Expire, "expire", -3, Route.Key, true),
        new(CommandId.PExpire, "pexpire", -3, Route.Key, true),
        new(CommandId.ExpireAt, "expireat", -3, Route.Key, true),
        new(CommandId.PExpireAt, "pexpireat", -3, Route.Key, true),
        new(CommandId.Ttl, "ttl", 2, Route.Key, false),
        new(CommandId.PTtl, "pttl", 2, Route.Key, false),
        new(CommandId.Persist, "persist", 2, Route.Key, true),
        new(CommandId.Type, "type", 2, Route.Key, false),
        new(CommandId.LPush, "lpush", -3, Route.Key, true),
        new(CommandId.RPush, "rpush", -3, Route.Key, true),
        new(CommandId.LPop, "lpop", -2, Route.Key, true),
        new(CommandId.RPop, "rpop", -2, Route.Key, true),
        new(CommandId.LRange, "lrange", 4, Route.Key, false),
        new(CommandId.LLen, "llen", 2, Route.Key, false),
        new(CommandId.Del, "del", -2, Route.Keys, true),
        new(CommandId.Unlink, "unlink", -2, Route.Keys, true),
        new(CommandId.Exists, "exists", -2, Route.Keys, false),
        new(CommandId.MGet, "mget", -2, Route.Keys, false),
        new(CommandId.MSet, "mset", -3, Route.Pairs, true),
        new(CommandId.DbSize, "dbsize", 1, Route.All, false),
        new(CommandId.FlushDb, "flushdb", -1, Route.All, true),
        new(CommandId.FlushAll, "flushall", -1, Route.All, true),
        new(CommandId.Keys, "keys", 2, Route.All, false),
        new(CommandId.Scan, "scan", -2, Route.Scan, false),
        new(CommandId.Info, "info", -1, Route.All, false),
    ];

    private static readonly CommandInfo[][] s_byLength = BuildBuckets();

    private static CommandInfo[][] BuildBuckets()
    {
        int max = 0;
        foreach (CommandInfo c in All) max = Math.Max(max, c.Upper.Length);
        var buckets = new CommandInfo[max + 1][];
        for (int len = 0; len <= max; len++) buckets[len] = Array.FindAll(All, c => c.Upper.Length == len);
        return buckets;
    }

    /// <summary>The command named <paramref name="name"/> (any case), or null.</summary>
    public static CommandInfo? Find(ReadOnlySpan<byte> name)
    {
        if ((uint)name.Length >= (uint)s_byLength.Length) return null;
        foreach (CommandInfo c in s_byLength[name.Length])
        {
            if (System.Text.Ascii.EqualsIgnoreCase(name, c.Upper)) return c;
        }
        return null;
    }
}
