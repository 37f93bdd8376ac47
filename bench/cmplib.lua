#!lua name=cmplib
redis.register_function('rw', function(keys, args)
  local old = redis.call('GET', keys[1])
  redis.call('SET', keys[1], args[1])
  return old
end)
