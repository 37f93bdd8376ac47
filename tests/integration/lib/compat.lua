#!lua name=compat
-- compat.lua - a Redis 7 function library written for Redis (Lua 5.1 there, 5.4 in
-- eddy), used by tests/integration/redis_compat.sh, which loads it into redis-server
-- and into eddyd and compares what both answer. It uses register_function in both
-- forms, flags, redis.call/pcall, KEYS/ARGV, error_reply, status_reply, and returns
-- values of every Lua type. It avoids behaviour that differs between Lua 5.1 and 5.4
-- on purpose (tostring of integral floats, error wording of the Lua core).

-- Plain form.
redis.register_function('compat_set', function(keys, args)
  return redis.call('SET', keys[1], args[1])
end)

redis.register_function('compat_incrby', function(keys, args)
  return redis.call('INCRBY', keys[1], args[1])
end)

-- Table form with the no-writes flag.
redis.register_function{
  function_name = 'compat_get',
  callback = function(keys, args) return redis.call('GET', keys[1]) end,
  flags = {'no-writes'},
  description = 'reads one key',
}

redis.register_function{
  function_name = 'compat_ro_write',
  callback = function(keys, args) return redis.call('SET', keys[1], 'x') end,
  flags = {'no-writes'},
}

redis.register_function{
  function_name = 'compat_flags',
  callback = function() return 'flags' end,
  flags = {'allow-oom', 'allow-stale', 'no-cluster'},
}

redis.register_function('compat_keys_args', function(keys, args)
  return {#keys, #args, keys, args}
end)

-- Every Lua type, selected by args[1].
local values = {
  int = function() return 42 end,
  negint = function() return -7 end,
  float = function() return 3.99 end,
  negfloat = function() return -3.5 end,
  bigfloat = function() return 2^53 end,
  str = function() return 'hello' end,
  empty = function() return '' end,
  ['true'] = function() return true end,
  ['false'] = function() return false end,
  ['nil'] = function() return nil end,
  none = function() end,
  array = function() return {1, 'two', {3, 4}, 5} end,
  holes = function() return {1, 2, nil, 4} end,
  nested_holes = function() return {{1, nil, 3}, {nil}, 'x'} end,
  hash = function() return {a = 1, b = 2} end,
  mixed = function() return {1, true, false, 'x', 2.5} end,
  ok = function() return {ok = 'fine'} end,
  err = function() return {err = 'MYERR custom'} end,
  nested_status = function() return {{ok = 'a'}, {err = 'ERR b'}, 'c'} end,
  status_reply = function() return redis.status_reply('DONE') end,
  error_reply = function() return redis.error_reply('ERR failed on purpose') end,
  error_reply_code = function() return redis.error_reply('MYCODE with code') end,
  double = function() return {double = 3.5} end,
  map = function() return {map = {only = 'one'}} end,
  set = function() return {set = {member = true}} end,
  bool_resp3 = function() redis.setresp(3) return {true, false} end,
}

redis.register_function('compat_value', function(keys, args)
  return values[args[1]]()
end)

redis.register_function{
  function_name = 'compat_value_ro',
  callback = function(keys, args) return values[args[1]]() end,
  flags = {'no-writes'},
}

-- What redis.call returns to Lua.
redis.register_function('compat_conversions', function(keys, args)
  redis.call('SET', keys[1], '10')
  local status = redis.call('SET', keys[1], '11')
  local int = redis.call('INCR', keys[1])
  local bulk = redis.call('GET', keys[1])
  local missing = redis.call('GET', keys[2])
  local multi = redis.call('MGET', keys[1], keys[2], keys[1])
  return {type(status), status.ok, type(int), int, type(bulk), bulk,
          type(missing), tostring(missing), #multi, multi[1], tostring(multi[2]), multi[3]}
end)

redis.register_function('compat_resp3_nil', function(keys)
  redis.setresp(3)
  local v = redis.call('GET', keys[1])
  return {type(v), tostring(v)}
end)

-- Errors.
redis.register_function('compat_pcall', function(keys)
  redis.call('SET', keys[1], 'not a number')
  local r = redis.pcall('INCR', keys[1])
  return {type(r), r.err}
end)

redis.register_function('compat_pcall_return', function(keys)
  redis.call('SET', keys[1], 'not a number')
  return redis.pcall('INCR', keys[1])
end)

redis.register_function('compat_call_error', function(keys)
  redis.call('SET', keys[1], 'not a number')
  return redis.call('INCR', keys[1])
end)

redis.register_function('compat_lua_pcall', function(keys)
  redis.call('SET', keys[1], 'not a number')
  local ok, e = pcall(redis.call, 'INCR', keys[1])
  return {tostring(ok), e.err or e}
end)

redis.register_function('compat_error', function()
  error('custom message')
end)

redis.register_function('compat_error_table', function()
  error(redis.error_reply('MYERR raised as a table'))
end)

redis.register_function('compat_wrong_arity', function()
  return redis.pcall('GET')
end)

redis.register_function('compat_unknown_command', function()
  return redis.pcall('NOSUCHCOMMAND', 'x')
end)

-- Helpers of the redis object.
redis.register_function('compat_sha1', function(keys, args)
  return redis.sha1hex(args[1])
end)

redis.register_function('compat_log', function(keys, args)
  redis.log(redis.LOG_NOTICE, 'compat.lua says ' .. args[1])
  return redis.status_reply('LOGGED')
end)

redis.register_function('compat_version', function()
  return {type(redis.REDIS_VERSION), redis.REDIS_VERSION_NUM >= 0x070000}
end)

redis.register_function('compat_json', function(keys, args)
  local t = cjson.decode(args[1])
  return {cjson.encode(t.list), t.name, #t.list}
end)

-- A counter of calls with a read-modify-write, and a sum of several keys.
redis.register_function('compat_rmw', function(keys, args)
  local v = tonumber(redis.call('GET', keys[1]) or '0')
  redis.call('SET', keys[1], v + tonumber(args[1]))
  return v + tonumber(args[1])
end)

redis.register_function{
  function_name = 'compat_sum',
  callback = function(keys)
    local s = 0
    for i = 1, #keys do s = s + tonumber(redis.call('GET', keys[i]) or '0') end
    return s
  end,
  flags = {'no-writes'},
}
