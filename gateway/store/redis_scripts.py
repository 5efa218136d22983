"""The Lua scripts of the Redis store. Each is loaded once and called by SHA.

All keys of one gateway key share the hash tag `{key id}`, so each script
touches one slot (Redis Cluster). Time is Redis's own (TIME), so replicas with
skewed clocks agree; `redis.replicate_commands()` allows that before writes on
Redis 6.2 and does nothing on 7+ and Valkey.

Times are milliseconds; rates are GCRA (a theoretical arrival time per limit).
"""

# KEYS[1]: the key's validity hash; KEYS[1 + i]: check i's state.
# ARGV: request id, lease ttl (ms), number of checks, then per check: kind, limit, cost,
# period (ms), ttl (ms).
# Returns {"invalid"}, {"denied", i, retry_after, remaining, reset}, or
# {"ok", remaining_1, reset_1, ...}. Numbers go back as strings (Lua would truncate them).
ADMIT = """
redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local valid = redis.call('HMGET', KEYS[1], 'revoked', 'expires')
if valid[1] == '1' or (valid[2] and tonumber(valid[2]) <= now) then
  return {'invalid'}
end
local lease_ttl = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local result = {'ok'}
local pending = {}
for i = 1, n do
  local key = KEYS[i + 1]
  local a = 3 + (i - 1) * 5
  local kind = ARGV[a + 1]
  local limit = tonumber(ARGV[a + 2])
  local cost = tonumber(ARGV[a + 3])
  local period = tonumber(ARGV[a + 4])
  local ttl = tonumber(ARGV[a + 5])
  local remaining, reset
  if kind == 'rate' then
    local interval = period / limit
    local tat = tonumber(redis.call('GET', key) or '0')
    if tat < now then tat = now end
    local new_tat = tat + cost * interval
    if new_tat - period > now then
      remaining = math.max(0, math.floor((period - (tat - now)) / interval + 1e-9))
      return {'denied', tostring(i), tostring(new_tat - period - now), tostring(remaining),
              tostring(tat - now)}
    end
    remaining = math.max(0, math.floor((period - (new_tat - now)) / interval + 1e-9))
    reset = new_tat - now
    pending[i] = {kind, key, new_tat}
  elseif kind == 'counter' then
    local value = tonumber(redis.call('GET', key) or '0')
    if value + cost > limit then
      return {'denied', tostring(i), tostring(ttl), tostring(math.max(0, limit - value)),
              tostring(ttl)}
    end
    remaining = limit - value - cost
    reset = ttl
    pending[i] = {kind, key, cost, ttl}
  else
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
    local held = redis.call('ZCARD', key)
    if held >= limit then
      return {'denied', tostring(i), '1000', '0', '0'}
    end
    remaining = limit - held - 1
    reset = 0
    pending[i] = {kind, key}
  end
  result[#result + 1] = tostring(remaining)
  result[#result + 1] = tostring(reset)
end
for i = 1, n do
  local p = pending[i]
  if p[1] == 'rate' then
    redis.call('SET', p[2], string.format('%.3f', p[3]), 'PX', math.ceil(p[3] - now) + 1000)
  elseif p[1] == 'counter' then
    redis.call('INCRBY', p[2], p[3])
    redis.call('PEXPIRE', p[2], p[4])
  else
    redis.call('ZADD', p[2], now + lease_ttl, ARGV[1])
    redis.call('PEXPIRE', p[2], lease_ttl * 2)
  end
end
return result
"""

# KEYS[i] (i <= n): reserved check i's state; KEYS[n + 1]: the usage hash; KEYS[n + 2]: the
# key's usage index; KEYS[n + 3]: the highest settlement number this replica has applied
# for this key. ARGV: request id, n, settlement number (0: unnumbered), then per check:
# kind, delta (rate: ms of theoretical arrival time; counter: units; lease: unused); then
# prompt, completion, reasoning, cost (micro-dollars), error (0/1), retention (ms), index entry.
# A settlement retried after a lost reply is recognised by its number and not applied twice.
SETTLE = """
redis.replicate_commands()
local n = tonumber(ARGV[2])
local number = tonumber(ARGV[3])
if number > 0 then
  if number <= tonumber(redis.call('GET', KEYS[n + 3]) or '0') then
    return 0
  end
  redis.call('SET', KEYS[n + 3], number, 'PX', 86400000)
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 1, n do
  local key = KEYS[i]
  local kind = ARGV[3 + (i - 1) * 2 + 1]
  local delta = tonumber(ARGV[3 + (i - 1) * 2 + 2])
  if kind == 'rate' and delta ~= 0 then
    local tat = tonumber(redis.call('GET', key) or '0')
    if delta > 0 and tat < now then tat = now end
    tat = tat + delta
    if tat > now then
      redis.call('SET', key, string.format('%.3f', tat), 'PX', math.ceil(tat - now) + 1000)
    else
      redis.call('DEL', key)
    end
  elseif kind == 'counter' and delta ~= 0 then
    if redis.call('EXISTS', key) == 1 then
      if redis.call('INCRBY', key, delta) < 0 then
        redis.call('SET', key, 0, 'KEEPTTL')
      end
    end
  elseif kind == 'lease' then
    redis.call('ZREM', key, ARGV[1])
  end
end
local u = KEYS[n + 1]
local a = 3 + n * 2
redis.call('HINCRBY', u, 'requests', 1)
redis.call('HINCRBY', u, 'prompt_tokens', ARGV[a + 1])
redis.call('HINCRBY', u, 'completion_tokens', ARGV[a + 2])
redis.call('HINCRBY', u, 'reasoning_tokens', ARGV[a + 3])
redis.call('HINCRBY', u, 'cost', ARGV[a + 4])
redis.call('HINCRBY', u, 'errors', ARGV[a + 5])
redis.call('PEXPIRE', u, ARGV[a + 6])
redis.call('SADD', KEYS[n + 2], ARGV[a + 7])
redis.call('PEXPIRE', KEYS[n + 2], ARGV[a + 6])
return 1
"""

# KEYS: lease sets of one key; ARGV: ttl (ms), then the request id for each key.
RENEW = """
redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, 'XX', now + tonumber(ARGV[1]), ARGV[i + 1])
end
return 1
"""
