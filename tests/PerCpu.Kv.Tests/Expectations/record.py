# Records the wire replies of the commands in commands.txt from a live server:
#   python3 record.py PORT OUT.json [commands.txt]
# redis-7.0.15-commands.json was recorded from redis-server 7.0.15 (Debian 12 package).
import socket, shlex, sys, json
def enc(args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        b = a.encode()
        out += b"$%d\r\n%s\r\n" % (len(b), b)
    return out
class C:
    def __init__(s, port):
        s.s = socket.create_connection(("127.0.0.1", port)); s.buf = b""
    def line(s):
        while b"\r\n" not in s.buf: s.buf += s.s.recv(65536)
        i = s.buf.index(b"\r\n"); l = s.buf[:i]; s.buf = s.buf[i+2:]; return l
    def exact(s, n):
        while len(s.buf) < n: s.buf += s.s.recv(65536)
        d = s.buf[:n]; s.buf = s.buf[n:]; return d
    def reply(s):
        l = s.line(); out = l + b"\r\n"; t = l[:1]
        if t in (b"+", b"-", b":"): return out
        n = int(l[1:])
        if t == b"$":
            if n < 0: return out
            return out + s.exact(n + 2)
        for _ in range(max(n, 0)): out += s.reply()
        return out
c = C(int(sys.argv[1]))
res = []
for line in open(sys.argv[3] if len(sys.argv) > 3 else "commands.txt"):
    args = shlex.split(line.strip())
    c.s.sendall(enc(args))
    res.append((args, c.reply().decode()))
json.dump(res, open(sys.argv[2], "w"))
