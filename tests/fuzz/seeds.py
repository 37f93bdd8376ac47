#!/usr/bin/env python3
"""seeds.py - writes the seed corpora of the fuzz targets into tests/fuzz/corpus/<name>/.

Run from the repository root: python3 tests/fuzz/seeds.py. The files are checked in;
rerun after changing the seeds below. Each target's input format is described at the
top of tests/fuzz/fuzz_<name>.c.
"""
import hashlib
import os
import struct
import subprocess

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def write(target, items):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        os.remove(os.path.join(d, f))
    for i, data in enumerate(items):
        if isinstance(data, str):
            data = data.encode()
        name = "seed-%03d-%s" % (i, hashlib.sha1(data).hexdigest()[:8])
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


def mb(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


# ---- resp_req: [limits byte][split byte] + request stream -------------------------------
req_streams = [
    mb("PING"),
    mb("SET", "k", "v") + mb("GET", "k"),
    mb("SET", "k", "a\r\nb\0c"),
    b"PING\r\n",
    b"SET k \"a b\\x41\\n\" 'c\\'d'\r\n",
    b"  \r\n\r\nPING\n",
    b"*0\r\n*-1\r\n" + mb("PING"),
    b"*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
    b"*1\r\n$-1\r\n",
    b"*1\r\n$1099511627776\r\n",
    b"*3000000000\r\n",
    b"*2\r\n+PING\r\n",
    b"*1\r\n$4\r\nPINGxx",
    b"SET \"unbalanced\r\n",
    b"x" * 70000 + b"\r\n",
    b"*1\r\n$" + b"9" * 40 + b"\r\n",
    b"*" + b"1" * 70 + b"\r\n",
    mb("MSET", *["k%d" % i for i in range(20)]),
    b"*1\r\n$3\r\nabc\r",
    b"\"\"\r\n''\r\n\"a\"b\r\n",
]
resp_req = []
for i, s in enumerate(req_streams):
    resp_req.append(bytes([0, (i * 7) % 256]) + s)
    resp_req.append(bytes([1, (i * 13) % 256]) + s)
write("resp_req", resp_req)

# ---- resp_reader: [limits byte][split byte] + reply stream ------------------------------
reply_streams = [
    b"+OK\r\n",
    b"-ERR oops\r\n",
    b":123\r\n:-9223372036854775808\r\n",
    b"$5\r\nhello\r\n$0\r\n\r\n$-1\r\n",
    b"*3\r\n:1\r\n$1\r\na\r\n*1\r\n+x\r\n",
    b"*-1\r\n*0\r\n",
    b"%2\r\n+a\r\n:1\r\n+b\r\n_\r\n",
    b"~2\r\n:1\r\n:2\r\n",
    b",3.14\r\n,inf\r\n,-inf\r\n,nan\r\n,1e308\r\n",
    b"#t\r\n#f\r\n",
    b"(12345678901234567890\r\n",
    b"=15\r\ntxt:Some string\r\n",
    b"!21\r\nSYNTAX invalid syntax\r\n",
    b"|1\r\n+key\r\n+value\r\n:42\r\n",
    b">3\r\n+message\r\n+chan\r\n$2\r\nhi\r\n",
    b"*2\r\n*2\r\n*2\r\n*2\r\n:1\r\n:2\r\n:3\r\n:4\r\n:5\r\n",
    b"$1099511627776\r\n",
    b"*1073741825\r\n",
    b"$3\r\nabcXY",
    b"?\r\n",
    b"*1\r\n" * 70 + b":1\r\n",
    b"=3\r\ntxt\r\n",
]
resp_reader = []
for i, s in enumerate(reply_streams):
    resp_reader.append(bytes([0, (i * 5) % 256]) + s)
    resp_reader.append(bytes([1, (i * 11) % 256]) + s)
write("resp_reader", resp_reader)

# ---- decoders: [mode byte] + bytes -------------------------------------------------------
def value(payload, expire=None):
    if expire is None:
        return bytes([1, 0]) + payload
    return bytes([1, 1]) + struct.pack(">q", expire) + payload


def dense(vals):
    return b"EVd1" + struct.pack("<I", len(vals)) + b"".join(struct.pack("<d", v) for v in vals)


def sparse(pairs):
    return (b"EVs1" + struct.pack("<I", len(pairs)) +
            b"".join(struct.pack("<I", i) for i, _ in pairs) +
            b"".join(struct.pack("<d", v) for _, v in pairs))


def csr(cols, rows):
    ptr, idx, val = [0], [], []
    for r in rows:
        for i, v in r:
            idx.append(i)
            val.append(v)
        ptr.append(len(idx))
    return (b"EVm1" + struct.pack("<III", len(rows), cols, len(idx)) +
            b"".join(struct.pack("<I", p) for p in ptr) +
            b"".join(struct.pack("<I", i) for i in idx) +
            b"".join(struct.pack("<d", v) for v in val))


def ser_str(s):
    return b"s" + struct.pack("<I", len(s)) + s


def ser_table(pairs):
    return b"T" + struct.pack("<I", len(pairs)) + b"".join(k + v for k, v in pairs)


dec = [
    b"\0" + value(b"hello"),
    b"\0" + value(b"", 1700000000000),
    b"\0" + value(b"x" * 40, -1),
    b"\0" + bytes([1]),
    b"\0" + bytes([2, 0]) + b"zz",
    b"\0" + bytes([1, 0xff]) + b"abc",
    b"\1" + dense([1.0, -0.0, float("inf"), float("nan")]),
    b"\1" + dense([]),
    b"\1" + b"EVd1" + struct.pack("<I", 1 << 27),
    b"\1" + b"EVd1" + struct.pack("<I", 0xffffffff),
    b"\2" + sparse([(1, 2.5), (3, -1.0), (3, 4.0)]),
    b"\2" + sparse([(0, 1.0)]),
    b"\2" + sparse([((1 << 27) + 1, 1.0)]),
    b"\3" + b"n",
    b"\3" + b"i" + struct.pack("<q", -5),
    b"\3" + b"d" + struct.pack("<d", 2.5),
    b"\3" + ser_str(b"abc"),
    b"\3" + b"v" + struct.pack("<I", 2) + struct.pack("<dd", 1.0, 2.0),
    b"\3" + ser_table([(b"i" + struct.pack("<q", 1), ser_str(b"a")),
                       (ser_str(b"k"), ser_table([(b"t", b"f")]))]),
    b"\3" + ser_table([(b"n", b"t")]),
    b"\3" + ser_table([(b"d" + struct.pack("<d", float("nan")), b"t")]),
    b"\3" + b"T" * 70 + struct.pack("<I", 1),
    b"\3" + b"T" + struct.pack("<I", 0xffffffff),
    b"\4" + csr(4, [[(1, 0.5), (3, 2.0)], [], [(2, 1.0), (2, -1.0), (4, 3.0)]]),
    b"\4" + csr(0, []),
    b"\4" + csr(3, [[(4, 1.0)]]),
    b"\4" + b"EVm1" + struct.pack("<III", 1 << 27, 1, 0),
    b"\4" + b"EVm1" + struct.pack("<III", 1, 1, 2) + struct.pack("<II", 0, 1),
]


def zstd_sized(raw):
    """A frame with its content size and checksum, as mr_pack writes."""
    return subprocess.run(["zstd", "-q", "-c", "-1", "--stream-size=%d" % len(raw)], input=raw,
                          stdout=subprocess.PIPE, check=True).stdout


partial = ser_table([(ser_str(b"k%d" % i), b"i" + struct.pack("<q", i)) for i in range(100)])
dec += [
    b"\5R" + partial[:40],
    b"\5R",
    b"\5Z" + zstd_sized(partial),
    b"\5Z" + zstd_sized(partial)[:-3],
    b"\5Z" + zstd_sized(b"x" * 2000000),      # content larger than the 1 MB cap
    b"\5Q" + partial[:10],
]
write("decoders", dec)

# ---- commands: lines of space-separated arguments ------------------------------------------
lib_line = ("FUNCTION LOAD REPLACE #!lua\\sname=l2\\nredis.register_function('f',\\s"
            "function(k,a)\\sreturn\\sredis.call('INCR',k[1])\\send)")
dump_payload = "EDDYFN01" + "\\x10\\x00\\x00\\x00" + "#!lua\\sname=rr\\nx"
cmds = [
    "SET k v\nGET k\nDEL k\nGET k",
    "SET k v EX 100\nTTL k\nPERSIST k\nTTL k\nPEXPIRE k 1\nPTTL k",
    "SET k 10\nINCR k\nINCRBY k 9223372036854775807\nDECRBY k -9223372036854775808\nINCRBYFLOAT k 1e308\nINCRBYFLOAT k inf",
    "APPEND k abc\nSETRANGE k 100 x\nGETRANGE k -5 -1\nSTRLEN k\nSUBSTR k 0 -1\nSETRANGE k 536870911 x",
    "MSET a 1 b 2 c 3\nMGET a b c d\nMSETNX a 1 z 2\nEXISTS a b z a",
    "SET n 1\nGETEX n PX 10\nGETDEL n\nGETEX n PERSIST\nSETEX n 0 v\nPSETEX n -1 v",
    "SCAN 0\nSCAN 0 MATCH * COUNT 1000 TYPE string\nKEYS *\nKEYS [a-\nDBSIZE\nRANDOMKEY",
    "EXPIRE k 100 NX\nEXPIRE k 100 XX GT LT\nEXPIREAT k -1\nEXPIRETIME k\nTYPE k",
    "HELLO 3\nGET missing\nCONFIG GET *\nINFO everything\nHELLO 2",
    "CLIENT SETNAME fz\nCLIENT GETNAME\nCLIENT LIST\nCLIENT INFO\nCLIENT ID\nCLIENT KILL ID 1",
    "COMMAND COUNT\nCOMMAND INFO get set\nCOMMAND DOCS get\nCOMMAND LIST",
    "CONFIG SET timeout 5\nCONFIG SET appendfsync always\nSET k v\nCONFIG RESETSTAT\nCONFIG SET hz 0",
    "FCALL incr2 1 c\nFCALL incr2 1 c\nFCALL getset 1 c new\nFCALL_RO ro 1 c\nFCALL fail 1 c\nGET c",
    "FCALL spin 0 100000000\nPING",
    "FCALL nosuch 0\nFCALL incr2 -1\nFCALL incr2 99 a\nFCALL_RO incr2 1 x",
    "EVAL return\\sredis.call('SET',KEYS[1],ARGV[1]) 1 k v\nEVAL_RO return\\s1 0\nSCRIPT LOAD return\\s1\nEVALSHA e0e1f9fabfc9d4800c877a703b823ac0578ff8db 0",
    "EVAL return\\s{ok='a\\r\\nb'} 0",
    "EVAL return\\s{double=0/0} 0\nHELLO 3\nEVAL return\\s{double=0/0} 0",
    "HELLO 3\nEVAL return\\s{big_number='1\\r\\n:2'} 0",
    "HELLO 3\nEVAL return\\s{verbatim_string={format='t',string='x'}} 0",
    "EVAL return\\s{err='x\\ny'} 0\nEVAL error({}) 0\nEVAL redis.call() 0",
    lib_line + "\nFCALL f 1 q\nFUNCTION LIST\nFUNCTION LIST WITHCODE LIBRARYNAME l*\nFUNCTION STATS\nFUNCTION DELETE l2",
    "FUNCTION DUMP\nFUNCTION RESTORE " + dump_payload + " REPLACE\nFUNCTION RESTORE garbage",
    "MAPREDUCE map @sum\nMAPREDUCE map @list x\nMAPREDUCE map nosuch\nMAPREDUCE nosuch @sum",
    "CLUSTER KEYSLOT {a}b\nCLUSTER SLOTS\nSELECT 0\nSELECT 1\nTIME\nECHO x\nPING a b",
    "AUTH x\nAUTH default x\nHELLO 3 AUTH default x\nHELLO 4\nHELLO x",
    "SET k\nGET\nSET k v NX XX\nSET k v EX 0\nSET k v EX 9223372036854775807\nSET k v KEEPTTL GET",
    "FLUSHALL ASYNC\nFLUSHDB SYNC\nUNLINK a b\nQUIT\nPING",
    "SET \\x00\\xff \\r\\n\nGET \\x00\\xff\nSET {x}1 a\nSET {x}2 b\nMGET {x}1 {x}2",
]
write("commands", cmds)

# ---- lua: library source (a "#!lua name=fz" line is added unless it starts with #!) ----------
lua = [
    # real libraries
    "redis.register_function('incr', function(keys, args) return redis.call('INCRBY', keys[1], args[2] or 1) end)\n"
    "redis.register_function{function_name='peek', callback=function(keys) return redis.call('GET', keys[1]) end, flags={'no-writes'}}",
    "local function transfer(keys, args)\n"
    "  local a = tonumber(redis.call('GET', keys[1]) or '0')\n"
    "  redis.call('SET', keys[1], a - 1)\n"
    "  redis.call('INCRBY', 'other', 1)\n"
    "  return {a, redis.call('GET', 'other')}\nend\nredis.register_function('transfer', transfer)",
    "redis.register_function('vec', function(keys, args)\n"
    "  local v = eddy.vec.new(4):fill(1.5)\n  local w = eddy.vec.from({1, 2, 3, 4})\n"
    "  v:axpy(2, w)\n  redis.call('SET', keys[1], v:encode())\n"
    "  local d = eddy.vec.decode(redis.call('GET', keys[1]))\n"
    "  local idx, vals = eddy.vec.decode_sparse(eddy.vec.encode_sparse({1, 3}, {0.5, 2}))\n"
    "  return {d:dot(w), v:sdot(idx, vals), tostring(d), d}\nend)",
    "redis.register_function('scan', function(keys, args, part)\n"
    "  local n = 0\n  for k, v in eddy.scan() do n = n + 1 end\n  return n\nend)",
    "redis.register_function('types', function(keys, args)\n"
    "  redis.setresp(3)\n  return {1, 2.5, 'x', true, false, {ok='fine'}, {map={a=1}}, {set={1,2}},"
    " {double=1.5}, {big_number='123'}, {verbatim_string={format='txt', string='v'}}}\nend)",
    "redis.register_function('pc', function(keys)\n"
    "  local r = redis.pcall('INCR', 'str')\n  redis.call('SET', 'str', 'abc')\n"
    "  local e = redis.pcall('INCR', 'str')\n  return {type(r), e.err or 'none'}\nend)",
    "redis.register_function('json', function(keys, args)\n"
    "  return cjson.encode(cjson.decode('{\"a\":[1,2,{\"b\":null}]}'))\nend)",
    "redis.register_function('patterns', function(keys, args)\n"
    "  local s = string.rep('a', 1000)\n  return {s:find('(a*)*b'), ('x=1, y=2'):gsub('(%w+)=(%w+)', '%2=%1')}\nend)",
    # hostile snippets
    "redis.register_function('loop', function() while true do end end)",
    "redis.register_function('mem', function() local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 1024) end end)",
    "redis.register_function('rep', function() return string.rep('x', 1 << 40) end)",
    "redis.register_function('rec', function() local function f(n) return f(n + 1) + 1 end return f(1) end)",
    "redis.register_function('io', function() return {io ~= nil, os.execute ~= nil, load ~= nil, require ~= nil, debug ~= nil, package ~= nil} end)",
    "redis.register_function('load', function() return load(string.dump(function() return 1 end)) end)",
    "redis.register_function('env', function() _G.x = 1; return x end)",
    "redis.register_function('meta', function() getmetatable('').__index = function() return 1 end; return ('x'):len() end)",
    "redis.register_function('co', function()\n"
    "  local co = coroutine.wrap(function() while true do coroutine.yield(1) end end)\n"
    "  local s = 0 for i = 1, 1e8 do s = s + co() end return s end)",
    "redis.register_function('pcallkill', function() while true do pcall(function() while true do end end) end end)",
    "redis.register_function('errobj', function() error({err='custom'}) end)",
    "redis.register_function('errtab', function() error(setmetatable({}, {__tostring=function() error('x') end})) end)",
    "redis.register_function('gc', function() setmetatable({}, {__gc=function() while true do end end}) collectgarbage() return 1 end)",
    "redis.register_function('crlf', function() return {ok='a\\r\\nb'} end)",
    "redis.register_function('nan', function() redis.setresp(3) return {double=0/0} end)",
    "redis.register_function('bign', function() return {big_number='1\\r\\n:2'} end)",
    "redis.register_function('verb', function() return {verbatim_string={format='t', string='x'}} end)",
    "redis.register_function('big', function() local t = {} for i = 1, 100000 do t[i] = i end return t end)",
    "redis.register_function('deep', function() local t = {} local c = t for i = 1, 10000 do c[1] = {} c = c[1] end return t end)",
    "redis.register_function('cycle', function() local t = {} t[1] = t return t end)",
    "redis.register_function('args', function(keys, args) return redis.call(unpack and 'x' or 'GET', table.unpack(keys)) end)",
    "redis.register_function('badcall', function() return redis.call({}, function() end) end)",
    "redis.register_function('manyargs', function() local a = {} for i = 1, 10000 do a[i] = 'x' end return redis.call('MSET', table.unpack(a)) end)",
    "redis.register_function('vecbad', function() return eddy.vec.new(1 << 27) end)",
    "redis.register_function('vecneg', function() return eddy.vec.new(-1) end)",
    "redis.register_function('strf', function() return string.format('%99999d', 1) end)",
    "local x = 0 while true do x = x + 1 end",
    "redis.register_function('a', function() end) redis.register_function('a', function() end)",
    "#!lua name=\nredis.register_function('x', function() end)",
    "#!lua name=ok flags=xx\nredis.register_function('x', function() end)",
    "redis.register_function{function_name='w', callback=function(k) return redis.call('SET', k[1], 'v') end, flags={'no-writes'}}",
    "redis.register_function('flushall', function() return redis.call('FLUSHALL') end)",
    "redis.register_function('evalin', function() return redis.call('EVAL', 'return 1', '0') end)",
    "redis.register_function('map', function(keys, args, part) return {part.index, eddy.vec.from({1,2}), {a=1}, 'x'} end)",
    "redis.register_function('mapbad', function(keys, args, part) return function() end end)",
    "redis.register_function('mapnan', function(keys, args, part) local t = {} t[0/0 == 0/0 and 1 or 2] = 0/0 return t end)",
    "redis.register_function('tostr', function() return tostring(setmetatable({}, {__name='eddy.vec'})) end)",
    "redis.register_function('sleep', function() local t = os.clock() while os.clock() - t < 10 do end end)",
]
write("lua", lua)

# ---- migrate: [mode byte] + raw batch, or [odd mode][raw length u24] + zstd frame ----------
def mput(key, val, expire=0, typ=1):
    return (b"P" + struct.pack("<I", len(key)) + key + bytes([typ]) + struct.pack("<q", expire) +
            struct.pack("<I", len(val)) + val)


def mdel(key):
    return b"D" + struct.pack("<I", len(key)) + key


def zstd(raw):
    return subprocess.run(["zstd", "-q", "-c", "-1"], input=raw, stdout=subprocess.PIPE,
                          check=True).stdout


batches = [
    mput(b"k1", b"v1") + mdel(b"k2") + mput(b"{t}a", b"x" * 100, 1700000000000),
    mput(b"", b""),
    mdel(b"gone"),
    mput(b"neg", b"v", -1),
    mput(b"k", b"v")[:-1],                     # value cut short
    mput(b"k", b"v", typ=2),                   # not a string
    b"X" + struct.pack("<I", 1) + b"k",        # unknown entry kind
    b"P" + struct.pack("<I", 0xffffffff),      # key longer than the batch
    b"D\0\0",                                  # cut header
    mput(b"k", b"") + b"P" + struct.pack("<I", 1) + b"k" + b"\1",  # 'P' without its 13 bytes
]
mig = [b"\0" + b for b in batches]
for b in batches[:4]:
    z = zstd(b)
    mig.append(b"\1" + struct.pack("<I", len(b))[:3] + z)
    mig.append(b"\1" + struct.pack("<I", len(b) + 1)[:3] + z)   # announced one byte long
    mig.append(b"\1" + struct.pack("<I", len(b))[:3] + z[:-1])  # frame cut
write("migrate", mig)
print("seeds written under", ROOT)
