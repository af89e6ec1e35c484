using System.Buffers.Binary;
using System.Text;
using PerCpu.Kv.Protocol;
using PerCpu.Kv.Store;

namespace PerCpu.Kv.Server;

// The commands a connection answers itself (no shard): PING, ECHO, SELECT, CLIENT, COMMAND, CONFIG, HELLO, QUIT, and
// the text of INFO. Replies go into _local at the command's place.
internal sealed partial class KvConnection
{
    private static string Text(ReadOnlySpan<byte> bytes) => Encoding.UTF8.GetString(bytes);

    private static bool Is(ReadOnlySpan<byte> arg, ReadOnlySpan<byte> upper) => Ascii.EqualsIgnoreCase(arg, upper);

    /// <summary>Redis's unknown-command error, with the first arguments quoted (at most 128 characters of them).</summary>
    private string UnknownCommand(in Cmd c)
    {
        var args = new StringBuilder();
        for (int i = 1; i < c.ArgCount && args.Length < 128; i++)
        {
            string a = Text(Arg(c, i));
            int room = 128 - args.Length;
            args.Append('\'').Append(a.Length > room ? a[..room] : a).Append("' ");
        }
        string name = Text(Arg(c, 0));
        if (name.Length > 128) name = name[..128];
        return $"ERR unknown command '{name}', with args beginning with: {args}";
    }

    private void RunLocal(ref Cmd c, CommandInfo info)
    {
        switch (info.Id)
        {
            case CommandId.Ping:
                if (c.ArgCount == 1) _local.Raw("+PONG\r\n"u8);
                else if (c.ArgCount == 2) _local.Bulk(Arg(c, 1));
                else _local.Error(info.ArityError);
                break;
            case CommandId.Echo:
                _local.Bulk(Arg(c, 1));
                break;
            case CommandId.Select:
                if (!Number.TryParseInt64(Arg(c, 1), out long db)) _local.Error(Shard.NotInteger);
                else if (db != 0) _local.Error("ERR DB index is out of range"u8);
                else _local.Ok();
                break;
            case CommandId.Quit:
                _local.Ok();
                break;
            case CommandId.Client:
                Client(c);
                break;
            case CommandId.Command:
                CommandCommand(c);
                break;
            case CommandId.Config:
                Config(c);
                break;
            case CommandId.Hello:
                Hello(c);
                break;
            default:
                _local.Error("ERR command not runnable on a connection: " + info.Name);
                break;
        }
    }

    private void Client(in Cmd c)
    {
        ReadOnlySpan<byte> sub = Arg(c, 1);
        if (Is(sub, "SETNAME"u8))
        {
            if (c.ArgCount != 3)
            {
                _local.Error("ERR wrong number of arguments for 'client|setname' command"u8);
                return;
            }
            ReadOnlySpan<byte> name = Arg(c, 2);
            foreach (byte b in name)
            {
                // Redis allows the printable ASCII characters but the space.
                if (b < '!' || b > '~')
                {
                    _local.Error("ERR Client names cannot contain spaces, newlines or special characters."u8);
                    return;
                }
            }
            Name = name.Length == 0 ? null : Text(name);
            _local.Ok();
        }
        else if (Is(sub, "GETNAME"u8))
        {
            if (Name == null) _local.Null();
            else _local.Bulk(Name);
        }
        else if (Is(sub, "ID"u8)) _local.Integer(Id);
        else if (Is(sub, "SETINFO"u8) || Is(sub, "NO-EVICT"u8) || Is(sub, "NO-TOUCH"u8)) _local.Ok();
        else if (Is(sub, "INFO"u8)) _local.Bulk(ClientLine() + "\n");
        else if (Is(sub, "LIST"u8)) _local.Bulk(_server.ClientList());
        else _local.Error($"ERR unknown subcommand '{Text(sub)}'. Try CLIENT HELP.");
    }

    /// <summary>This client's line of CLIENT LIST.</summary>
    internal string ClientLine() => $"id={Id} addr={RemoteEndPoint} name={Name} db=0 cpu={_cpu.Id}";

    private void CommandCommand(in Cmd c)
    {
        if (c.ArgCount == 1)
        {
            _local.ArrayHeader(CommandTable.All.Length);
            foreach (CommandInfo info in CommandTable.All) CommandEntry(info);
            return;
        }
        ReadOnlySpan<byte> sub = Arg(c, 1);
        if (Is(sub, "COUNT"u8)) _local.Integer(CommandTable.All.Length);
        else if (Is(sub, "DOCS"u8)) _local.ArrayHeader(0); // redis-cli asks at start for its hints; none is fine
        else if (Is(sub, "INFO"u8))
        {
            _local.ArrayHeader(c.ArgCount - 2);
            for (int i = 2; i < c.ArgCount; i++)
            {
                CommandInfo? info = CommandTable.Find(Arg(c, i));
                if (info == null) _local.NullArray();
                else CommandEntry(info);
            }
        }
        else _local.Error($"ERR unknown subcommand '{Text(sub)}'. Try COMMAND HELP.");
    }

    /// <summary>One command's COMMAND entry in Redis 7's RESP2 shape (ten fields).</summary>
    private void CommandEntry(CommandInfo info)
    {
        _local.ArrayHeader(10);
        _local.Bulk(info.Name);
        _local.Integer(info.Arity);
        _local.ArrayHeader(1);
        _local.Simple(info.Write ? "write"u8 : "readonly"u8);
        bool keys = info.Route is Server.Route.Key or Server.Route.Keys or Server.Route.Pairs;
        _local.Integer(keys ? 1 : 0);
        _local.Integer(!keys ? 0 : info.Route == Server.Route.Key ? 1 : -1);
        _local.Integer(!keys ? 0 : info.Route == Server.Route.Pairs ? 2 : 1);
        for (int i = 0; i < 4; i++) _local.ArrayHeader(0);
    }

    private void Config(in Cmd c)
    {
        ReadOnlySpan<byte> sub = Arg(c, 1);
        if (Is(sub, "GET"u8))
        {
            if (c.ArgCount < 3)
            {
                _local.Error("ERR wrong number of arguments for 'config|get' command"u8);
                return;
            }
            (string Name, string Value)[] all = _server.ConfigValues();
            var found = new List<(string, string)>();
            for (int i = 2; i < c.ArgCount; i++)
            {
                ReadOnlySpan<byte> pattern = Arg(c, i);
                foreach ((string name, string value) in all)
                {
                    bool match = Glob.Match(Encoding.ASCII.GetBytes(Text(pattern).ToLowerInvariant()), Encoding.ASCII.GetBytes(name));
                    if (match && !found.Contains((name, value))) found.Add((name, value));
                }
            }
            _local.ArrayHeader(found.Count * 2);
            foreach ((string name, string value) in found)
            {
                _local.Bulk(name);
                _local.Bulk(value);
            }
        }
        else if (Is(sub, "SET"u8))
        {
            string name = c.ArgCount > 2 ? Text(Arg(c, 2)) : "";
            _local.Error($"ERR Unknown option or number of arguments for CONFIG SET - '{name}'");
        }
        else if (Is(sub, "RESETSTAT"u8)) _local.Ok();
        else _local.Error($"ERR unknown subcommand '{Text(sub)}'. Try CONFIG HELP.");
    }

    private void Hello(in Cmd c)
    {
        if (c.ArgCount > 1)
        {
            if (!Number.TryParseInt64(Arg(c, 1), out long version))
            {
                _local.Error("ERR Protocol version is not an integer or out of range"u8);
                return;
            }
            if (version != 2)
            {
                // RESP3 is not spoken here: clients fall back to RESP2 on this reply, as they do with Redis 5.
                _local.Error("NOPROTO unsupported protocol version"u8);
                return;
            }
            for (int i = 2; i < c.ArgCount; i++)
            {
                if (Is(Arg(c, i), "SETNAME"u8) && i + 1 < c.ArgCount) Name = Text(Arg(c, ++i));
                else if (Is(Arg(c, i), "AUTH"u8) && i + 2 < c.ArgCount) i += 2;
                else
                {
                    _local.Error($"ERR Syntax error in HELLO option '{Text(Arg(c, i))}'");
                    return;
                }
            }
        }
        _local.ArrayHeader(14);
        _local.Bulk("server"u8);
        _local.Bulk("redis"u8);
        _local.Bulk("version"u8);
        _local.Bulk(KvServer.RedisVersion);
        _local.Bulk("proto"u8);
        _local.Integer(2);
        _local.Bulk("id"u8);
        _local.Integer(Id);
        _local.Bulk("mode"u8);
        _local.Bulk("standalone"u8);
        _local.Bulk("role"u8);
        _local.Bulk("master"u8);
        _local.Bulk("modules"u8);
        _local.ArrayHeader(0);
    }

    /// <summary>INFO: the sections asked for (all by default), with the shards' numbers from the parts.</summary>
    private void WriteInfo(in Cmd c)
    {
        long keys = 0, expires = 0, hits = 0, misses = 0, expired = 0;
        for (int p = 0; p < c.PartCount; p++)
        {
            ReadOnlySpan<byte> b = PartReply(c.PartStart + p);
            keys += BinaryPrimitives.ReadInt64LittleEndian(b);
            expires += BinaryPrimitives.ReadInt64LittleEndian(b.Slice(8));
            hits += BinaryPrimitives.ReadInt64LittleEndian(b.Slice(16));
            misses += BinaryPrimitives.ReadInt64LittleEndian(b.Slice(24));
            expired += BinaryPrimitives.ReadInt64LittleEndian(b.Slice(32));
        }
        var sections = new List<string>();
        for (int i = 1; i < c.ArgCount; i++) sections.Add(Text(Arg(c, i)).ToLowerInvariant());
        _out.Bulk(_server.Info(sections, keys, expires, hits, misses, expired));
    }
}
