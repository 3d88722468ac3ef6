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
-- A call's groups from ARGV[a] (G, then per group U, N, rpm1, tpm1, ..., B, field1, limit1, ...; -1 = no
-- limit) and their keys from KEYS[1] (per group z1, h1, ..., zN, hN [, month]). U = 1: the group's budgets
-- count money (`spend`), not tokens.
local function read_groups(a, tokens, spend)
  local groups = {}; local k = 1
  for g = 1, tonumber(ARGV[a]) do
    a = a + 1
    local grp = {windows = {}, budgets = {}, amount = tokens, money = ARGV[a] == '1'}
    if grp.money then grp.amount = spend end
    for i = 1, tonumber(ARGV[a + 1]) do
      grp.windows[i] = {z = KEYS[k], h = KEYS[k + 1], rpm = tonumber(ARGV[a + 2 * i]), tpm = tonumber(ARGV[a + 2 * i + 1])}
      k = k + 2
    end
    a = a + 2 + 2 * #grp.windows
    for j = 1, tonumber(ARGV[a]) do
      grp.budgets[j] = {field = ARGV[a + 2 * j - 1], limit = tonumber(ARGV[a + 2 * j])}
    end
    a = a + 2 * #grp.budgets
    if #grp.budgets > 0 then grp.month = KEYS[k]; k = k + 1 end
    groups[g] = grp
  end
  return groups
end
-- the wait before one more request fits in a window holding `count`; 0 when it fits, -1 never
local function requests_wait(z, rpm, count, window, now)
  if rpm < 0 or count < rpm then return 0 end
  if rpm == 0 then return -1 end
  local at = redis.call('ZRANGE', z, count - rpm, count - rpm, 'WITHSCORES')
  return math.max(1, tonumber(at[2]) + window - now)
end
-- the wait before `cost` more tokens fit in a window holding `sum`; 0 when they fit, -1 never
local function tokens_wait(z, h, tpm, sum, cost, window, now)
  if tpm < 0 or sum + cost <= tpm then return 0 end
  if cost > tpm then return -1 end
  local need = sum + cost - tpm; local freed = 0
  local entries = redis.call('ZRANGE', z, 0, -1, 'WITHSCORES')
  for e = 1, #entries, 2 do
    freed = freed + (tonumber(redis.call('HGET', h, entries[e])) or 0)
    if freed >= need then return math.max(1, tonumber(entries[e + 1]) + window - now) end
  end
  return window
end
"""

# Checks every group, then reserves in all of them, or in none.
# KEYS: per group: z1, h1, ..., zN, hN [, month]
# ARGV: window_ms, rid, cost, month_expire_at, again (0/1), spend, G, then per group: U, N, rpm1, tpm1, ..., B,
#       field1, limit1, ... (-1 = no limit). U = 1: the group's budgets count money (spend, micro-units), not
#       tokens (cost); windows always count tokens. again = 1: rid was admitted before (a failover); a window
#       still holding it does not count it again (its tokens are replaced) and the month's request count stays.
# -> {1, per group: count1, sum1, reset1, ..., used1, ...}
#    or {0, group, reason (1 requests, 2 tokens, 3 budget), wait_ms (-1 never), index}
RESERVE = COMMON + r"""
local window = tonumber(ARGV[1]); local rid = ARGV[2]; local cost = tonumber(ARGV[3])
local expire_at = tonumber(ARGV[4]); local again = ARGV[5] == '1'; local spend = tonumber(ARGV[6])
local now = now_ms()
local groups = read_groups(7, cost, spend)
for g, grp in ipairs(groups) do
  for j, b in ipairs(grp.budgets) do
    if b.limit >= 0 and (tonumber(redis.call('HGET', grp.month, b.field)) or 0) + grp.amount > b.limit then
      return {0, g, 3, -1, j}
    end
  end
  for i, w in ipairs(grp.windows) do
    prune(w.z, w.h, now - window)
    if again then w.held = tonumber(redis.call('HGET', w.h, rid)) end
    local wait = 0
    if not w.held and w.rpm >= 0 then wait = requests_wait(w.z, w.rpm, redis.call('ZCARD', w.z), window, now) end
    if wait ~= 0 then return {0, g, 1, wait, i} end
    if w.tpm >= 0 then
      wait = tokens_wait(w.z, w.h, w.tpm, tonumber(redis.call('HGET', w.h, '_sum')) or 0, cost - (w.held or 0),
                         window, now)
    end
    if wait ~= 0 then return {0, g, 2, wait, i} end
  end
end
local out = {1}
for _, grp in ipairs(groups) do
  for _, w in ipairs(grp.windows) do
    if not w.held then redis.call('ZADD', w.z, now, rid) end
    redis.call('HSET', w.h, rid, cost)
    local sum = redis.call('HINCRBY', w.h, '_sum', cost - (w.held or 0))
    redis.call('PEXPIRE', w.z, window + 1000); redis.call('PEXPIRE', w.h, window + 1000)
    out[#out + 1] = redis.call('ZCARD', w.z); out[#out + 1] = sum; out[#out + 1] = oldest_reset(w.z, now, window)
  end
  if grp.month then
    for _, b in ipairs(grp.budgets) do
      out[#out + 1] = redis.call('HINCRBY', grp.month, b.field, grp.amount)
    end
    if not again then redis.call('HINCRBY', grp.month, 'requests', 1) end
    redis.call('EXPIREAT', grp.month, expire_at)
  end
end
return out
"""

# Settles a reservation in every group it holds.
# KEYS: per group: z1, h1, ..., zN, hN [, month]
# ARGV: rid, used, delta, release (0/1), month_expire_at, again (0/1), spend_delta, G, then per group: U, N, B,
#       field1, ..., fieldB. U = 1: the group's budgets count money (spend_delta, micro-units), not tokens (delta).
# again = 1: an earlier attempt got no answer and may have been applied. A group's first window tells: it
# holds `used` already (delta ~= 0), or no longer holds a released rid; then its month counters are left alone.
SETTLE = r"""
local rid = ARGV[1]; local used = tonumber(ARGV[2]); local delta = tonumber(ARGV[3])
local release = ARGV[4] == '1'; local expire_at = tonumber(ARGV[5]); local again = ARGV[6] == '1'
local spend_delta = tonumber(ARGV[7])
local a = 10; local k = 1
for g = 1, tonumber(ARGV[8]) do
  local n = tonumber(ARGV[a]); local nb = tonumber(ARGV[a + 1])
  local amount = delta
  if ARGV[a - 1] == '1' then amount = spend_delta end
  local applied = false
  for i = 1, n do
    local z = KEYS[k]; local h = KEYS[k + 1]
    k = k + 2
    local held = tonumber(redis.call('HGET', h, rid))
    if again and i == 1 then
      if release then applied = held == nil else applied = held ~= nil and held == used and delta ~= 0 end
    end
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
    local month = KEYS[k]
    k = k + 1
    if not applied then
      for j = 1, nb do
        if (tonumber(redis.call('HINCRBY', month, ARGV[a + 1 + j], amount)) or 0) < 0 then
          redis.call('HSET', month, ARGV[a + 1 + j], 0)
        end
      end
      if release then redis.call('HINCRBY', month, 'requests', -1) end
      redis.call('EXPIREAT', month, expire_at)
    end
  end
  a = a + 3 + nb
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
