"""Lua scripts of the Redis store. Each runs atomically inside one hash slot and
uses the Redis server's clock, so every replica sees the same windows.

Window scope = a sorted set (request id -> admission time in ms) and a hash
(request id -> tokens, plus "_sum"). Month = a hash of counters per field.
The rules mirror lockgate.proxy.quota.window (sliding-window log).
"""

COMMON = r"""
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- HMGET/HDEL over many ids, in chunks small enough for unpack()
local function chunked(cmd, key, ids, each)
  for i = 1, #ids, 500 do
    local part = {}
    for j = i, math.min(i + 499, #ids) do part[#part + 1] = ids[j] end
    local out = redis.call(cmd, key, unpack(part))
    if each then for _, v in ipairs(out) do each(v) end end
  end
end
local function prune(z, h, horizon)
  local old = redis.call('ZRANGEBYSCORE', z, '-inf', horizon)
  if #old == 0 then return end
  local freed = 0
  chunked('HMGET', h, old, function(v) freed = freed + (tonumber(v) or 0) end)
  chunked('HDEL', h, old)
  redis.call('ZREMRANGEBYSCORE', z, '-inf', horizon)
  redis.call('HINCRBY', h, '_sum', -freed)
end
local function oldest_reset(z, now, window)
  local first = redis.call('ZRANGE', z, 0, 0, 'WITHSCORES')
  if #first == 0 then return 0 end
  return math.max(0, tonumber(first[2]) + window - now)
end
"""

# KEYS: z1, h1, ..., zN, hN [, month]
# ARGV: window_ms, rid, cost, month_expire_at, N, rpm1, tpm1, ..., B, field1, limit1, ...  (-1 = no limit)
# -> {1, count1, sum1, reset1, ..., used1, ...} or {0, reason (1 requests, 2 tokens, 3 budget), wait_ms (-1 never), index}
RESERVE = COMMON + r"""
local window = tonumber(ARGV[1]); local rid = ARGV[2]; local cost = tonumber(ARGV[3])
local expire_at = tonumber(ARGV[4]); local n = tonumber(ARGV[5])
local nb = tonumber(ARGV[6 + 2 * n])
local month = KEYS[2 * n + 1]
local now = now_ms()
if nb > 0 then
  for j = 1, nb do
    local field = ARGV[6 + 2 * n + 2 * j - 1]; local limit = tonumber(ARGV[6 + 2 * n + 2 * j])
    if limit >= 0 and (tonumber(redis.call('HGET', month, field)) or 0) + cost > limit then
      return {0, 3, -1, j}
    end
  end
end
for i = 1, n do
  local z = KEYS[2 * i - 1]; local h = KEYS[2 * i]
  local rpm = tonumber(ARGV[4 + 2 * i]); local tpm = tonumber(ARGV[5 + 2 * i])
  prune(z, h, now - window)
  if rpm >= 0 then
    local count = redis.call('ZCARD', z)
    if count >= rpm then
      if rpm == 0 then return {0, 1, -1, i} end
      local at = redis.call('ZRANGE', z, count - rpm, count - rpm, 'WITHSCORES')
      return {0, 1, math.max(0, tonumber(at[2]) + window - now), i}
    end
  end
  if tpm >= 0 then
    local sum = tonumber(redis.call('HGET', h, '_sum')) or 0
    if sum + cost > tpm then
      if cost > tpm then return {0, 2, -1, i} end
      local need = sum + cost - tpm; local freed = 0; local wait = window
      local entries = redis.call('ZRANGE', z, 0, -1, 'WITHSCORES')
      for k = 1, #entries, 2 do
        freed = freed + (tonumber(redis.call('HGET', h, entries[k])) or 0)
        if freed >= need then wait = math.max(0, tonumber(entries[k + 1]) + window - now); break end
      end
      return {0, 2, wait, i}
    end
  end
end
local out = {1}
for i = 1, n do
  local z = KEYS[2 * i - 1]; local h = KEYS[2 * i]
  redis.call('ZADD', z, now, rid)
  redis.call('HSET', h, rid, cost)
  local sum = redis.call('HINCRBY', h, '_sum', cost)
  redis.call('PEXPIRE', z, window + 1000); redis.call('PEXPIRE', h, window + 1000)
  out[#out + 1] = redis.call('ZCARD', z); out[#out + 1] = sum; out[#out + 1] = oldest_reset(z, now, window)
end
if nb > 0 then
  for j = 1, nb do
    out[#out + 1] = redis.call('HINCRBY', month, ARGV[6 + 2 * n + 2 * j - 1], cost)
  end
  redis.call('HINCRBY', month, 'requests', 1)
  redis.call('EXPIREAT', month, expire_at)
end
return out
"""

# KEYS: z1, h1, ..., zN, hN [, month]
# ARGV: rid, used, delta, release (0/1), month_expire_at, N, B, field1, ..., fieldB
SETTLE = r"""
local rid = ARGV[1]; local used = tonumber(ARGV[2]); local delta = tonumber(ARGV[3])
local release = ARGV[4] == '1'; local n = tonumber(ARGV[6]); local nb = tonumber(ARGV[7])
for i = 1, n do
  local z = KEYS[2 * i - 1]; local h = KEYS[2 * i]
  local held = tonumber(redis.call('HGET', h, rid))
  if held then
    if release then
      redis.call('HDEL', h, rid); redis.call('ZREM', z, rid)
      redis.call('HINCRBY', h, '_sum', -held)
    else
      redis.call('HSET', h, rid, used)
      redis.call('HINCRBY', h, '_sum', used - held)
    end
  end
end
if nb > 0 then
  local month = KEYS[2 * n + 1]
  for j = 1, nb do
    local field = ARGV[7 + j]
    if (tonumber(redis.call('HINCRBY', month, field, delta)) or 0) < 0 then redis.call('HSET', month, field, 0) end
  end
  if release then redis.call('HINCRBY', month, 'requests', -1) end
  redis.call('EXPIREAT', month, tonumber(ARGV[5]))
end
return 1
"""

# KEYS: z1, h1, ..., zN, hN, month;  ARGV: window_ms, N
# -> {count1, sum1, reset1, ..., field, value, field, value, ...}
PEEK = COMMON + r"""
local window = tonumber(ARGV[1]); local n = tonumber(ARGV[2])
local now = now_ms()
local out = {}
for i = 1, n do
  local z = KEYS[2 * i - 1]; local h = KEYS[2 * i]
  local ids = redis.call('ZRANGEBYSCORE', z, '(' .. (now - window), '+inf', 'WITHSCORES')
  local sum = 0; local first = nil
  for k = 1, #ids, 2 do
    sum = sum + (tonumber(redis.call('HGET', h, ids[k])) or 0)
    if not first then first = tonumber(ids[k + 1]) end
  end
  out[#out + 1] = #ids / 2; out[#out + 1] = sum
  out[#out + 1] = first and math.max(0, first + window - now) or 0
end
local counters = redis.call('HGETALL', KEYS[2 * n + 1])
for _, v in ipairs(counters) do out[#out + 1] = v end
return out
"""
