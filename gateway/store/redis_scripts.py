"""The Lua scripts of the Redis store. Each is loaded once and called by SHA.

All keys of one gateway key share the hash tag `{key id}`, so each script
touches one slot (Redis Cluster). Time is Redis's own (TIME), so replicas with
skewed clocks agree; `redis.replicate_commands()` allows that before writes on
Redis 6.2 and does nothing on 7+ and Valkey.

Times are milliseconds; rates are GCRA (a theoretical arrival time per limit).
"""

# KEYS[1]: the key's validity hash; KEYS[1 + i]: check i's state.
# ARGV: request id, lease ttl (ms), the checks as JSON: [[kind, limit, cost, period ms, ttl ms],
# ...] (one argument, not five a check: packing arguments is what a call costs the client).
# Returns {"invalid"}, {"denied", i, retry_after, remaining, reset}, or
# {"ok", remaining_1, reset_1, ...}. Numbers go back as strings (Lua would truncate them).
# Nothing is written before every check has passed, and the first write is one that grows
# memory: so a full Redis (maxmemory, no eviction) refuses the whole admission, on 6.2 as on
# 7+, instead of letting it through after a write that frees memory.
ADMIT = """
redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local valid = redis.call('HMGET', KEYS[1], 'revoked', 'expires')
if valid[1] == '1' or (valid[2] and tonumber(valid[2]) <= now) then
  return {'invalid'}
end
local lease_ttl = tonumber(ARGV[2])
local checks = cjson.decode(ARGV[3])
local n = #checks
local result = {'ok'}
local pending = {}
for i = 1, n do
  local key = KEYS[i + 1]
  local kind = checks[i][1]
  local limit = checks[i][2]
  local cost = checks[i][3]
  local period = checks[i][4]
  local ttl = checks[i][5]
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
    local held = redis.call('ZCOUNT', key, '(' .. now, '+inf')
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
    redis.call('ZREMRANGEBYSCORE', p[2], '-inf', now)
    redis.call('PEXPIRE', p[2], lease_ttl * 2)
  end
end
return result
"""

# Settles a batch in one call: on one node every settlement of the batch, on a Cluster one
# key's (its keys share a slot). ARGV[1]: JSON, a list of settlements, each [request id,
# number (0: unnumbered), [[kind, delta], ...] (rate: ms of theoretical arrival time;
# counter: units; lease: -), prompt, completion, reasoning, cost (micro-dollars), error (0/1),
# retention (ms), index entry]. KEYS: each settlement's in turn, n + 3 of them: its n
# reserved checks' states, its usage hash, the key's usage index, and the highest settlement
# number this replica has applied for the key. Returns a list, one entry a settlement: 1
# applied, 0 already applied (a retry after a lost reply, recognised by its number). A key's
# settlements of a batch are in one call, in order, so none can be applied before an earlier
# one; a full Redis refuses the call at its first write, before anything is applied. Amounts
# of 0 are not written (a missing field reads as 0), and a usage hash's expiry and index
# entry are set once a batch.
SETTLE = """
redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local FIELDS = {nil, nil, nil, 'prompt_tokens', 'completion_tokens', 'reasoning_tokens', 'cost',
                'errors'}
local results = {}
local kept = {}
local base = 0
for j, s in ipairs(cjson.decode(ARGV[1])) do
  local number = s[2]
  local changes = s[3]
  local n = #changes
  local result = 1
  if number > 0 then
    local applied = tonumber(redis.call('GET', KEYS[base + n + 3]) or '0')
    if number <= applied then
      result = 0
    else
      redis.call('SET', KEYS[base + n + 3], number, 'PX', 86400000)
    end
  end
  if result == 1 then
    for i = 1, n do
      local key = KEYS[base + i]
      local kind = changes[i][1]
      local delta = changes[i][2]
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
        redis.call('ZREM', key, s[1])
      end
    end
    local u = KEYS[base + n + 1]
    redis.call('HINCRBY', u, 'requests', 1)
    for f = 4, 8 do
      if s[f] ~= 0 then
        redis.call('HINCRBY', u, FIELDS[f], s[f])
      end
    end
    if kept[u] ~= s[9] then  -- once a batch for each usage hash (and retention)
      kept[u] = s[9]
      redis.call('PEXPIRE', u, s[9])
      redis.call('SADD', KEYS[base + n + 2], s[10])
      redis.call('PEXPIRE', KEYS[base + n + 2], s[9])
    end
  end
  results[j] = result
  base = base + n + 3
end
return results
"""

# KEYS: lease sets of one key; ARGV: ttl (ms), then the request id for each key.
RENEW = """
redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  if redis.call('ZADD', key, 'XX', 'CH', now + ttl, ARGV[i + 1]) == 1 then
    redis.call('PEXPIRE', key, ttl * 2)  -- as ADMIT does: the set outlives its leases
  end
end
return 1
"""

# The settle batch's sums (redis_usage.py), in one call instead of a command a field.
# KEYS: the sums' hashes. ARGV[1]: JSON [[[key index, ...], prefix, amount 1, ...], ...]: each
# amount is added to field `prefix .. name` (ARGV[3]: JSON, the amounts' names) of each of
# the hashes; ARGV[2]: JSON [[key index, ms, absolute], ...]: PEXPIREAT when absolute is 1,
# else PEXPIRE. Amounts and times are strings: cjson reads a number as a double, and one
# over 2^53 would lose its last digits. Only where the sums share one node (a Cluster's
# lie in many slots).
SUMS = """
local names = cjson.decode(ARGV[3])
for _, add in ipairs(cjson.decode(ARGV[1])) do
  for i, name in ipairs(names) do
    local amount = add[2 + i]
    if amount ~= '0' then
      for _, k in ipairs(add[1]) do
        redis.call('HINCRBY', KEYS[k], add[2] .. name, amount)
      end
    end
  end
end
for _, keep in ipairs(cjson.decode(ARGV[2])) do
  redis.call(keep[3] == 1 and 'PEXPIREAT' or 'PEXPIRE', KEYS[keep[1]], keep[2])
end
return 1
"""
