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
local groups = {}
local a = 9; local k = 1
for g = 1, tonumber(ARGV[7]) do
  local grp = {windows = {}, budgets = {}, amount = cost}
  if ARGV[a - 1] == '1' then grp.amount = spend end
  for i = 1, tonumber(ARGV[a]) do
    grp.windows[i] = {z = KEYS[k], h = KEYS[k + 1], rpm = tonumber(ARGV[a + 2 * i - 1]), tpm = tonumber(ARGV[a + 2 * i])}
    k = k + 2
  end
  a = a + 1 + 2 * #grp.windows
  for j = 1, tonumber(ARGV[a]) do
    grp.budgets[j] = {field = ARGV[a + 2 * j - 1], limit = tonumber(ARGV[a + 2 * j])}
  end
  a = a + 2 + 2 * #grp.budgets
  if #grp.budgets > 0 then grp.month = KEYS[k]; k = k + 1 end
  groups[g] = grp
end
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

# What the batched scripts share. A batch names each plan (a request's groups: keys, limits, budget
# fields) once, then its calls, each by its plan's number: every window and month hash the batch
# touches is read once (its state kept in a table) and written once at the end, however many calls
# count in it.
BATCHED = r"""
local EXACT = 2 ^ 53  -- month counters past this are added to with HINCRBY (Lua numbers are doubles)
local function int(v) return string.format('%d', v) end
-- a command over a long list of arguments, in chunks small enough for unpack() (pairs stay whole)
local function put(cmd, key, list)
  for i = 1, #list, 1000 do redis.call(cmd, key, unpack(list, i, math.min(i + 999, #list))) end
end
local months, month_order = {}, {}
-- a month hash's counters, each field read once; `changed`: the fields to write back
local function month(key, fields, expire_at)
  local m = months[key]
  if not m then
    m = {key = key, vals = {}, incr = {}, changed = {}, expire_at = expire_at, fresh = true}
    months[key] = m; month_order[#month_order + 1] = m
  end
  local missing = {}
  for _, f in ipairs(fields) do if m.vals[f] == nil then missing[#missing + 1] = f end end
  if #missing > 0 then
    local got = redis.call('HMGET', key, unpack(missing))
    for i, f in ipairs(missing) do
      if got[i] then m.fresh = false end
      m.vals[f] = tonumber(got[i]) or 0
    end
  end
  return m
end
-- `amount` more in a field: its value (for the checks) and, exactly, what this call adds to it
local function add(m, field, amount)
  if not m.changed[field] then m.changed[field] = true; m.changed[#m.changed + 1] = field; m.incr[field] = 0 end
  m.vals[field] = m.vals[field] + amount
  m.incr[field] = m.incr[field] + amount
end
-- one HSET per month hash; every writer of a month hash sets its expiry, so one holding a counter has it
local function write_months()
  for _, m in ipairs(month_order) do
    local exact, set = true, {}
    for _, f in ipairs(m.changed) do
      if math.abs(m.vals[f]) >= EXACT or math.abs(m.vals[f] - m.incr[f]) >= EXACT then exact = false end
      set[#set + 1] = f; set[#set + 1] = int(m.vals[f])
    end
    if exact then
      if #set > 0 then redis.call('HSET', m.key, unpack(set)) end
    else
      for _, f in ipairs(m.changed) do redis.call('HINCRBY', m.key, f, int(m.incr[f])) end
    end
    if m.fresh and #m.changed > 0 then redis.call('EXPIREAT', m.key, m.expire_at) end
  end
end
"""

# Many reservations in one call, each decided as RESERVE decides it, one after the other (each sees the
# ones before it), at the same server time.
# KEYS: per plan, its RESERVE keys.
# ARGV: window_ms, P, then per plan: month_expire_at, G, then per group as RESERVE's: U, N, rpm1, tpm1, ..., B,
#       field1, limit1, ...; then per reservation: plan (1..P), rid, cost, again (0/1), spend.
# -> per reservation, RESERVE's reply
# A window's hash keeps '_exp', when this script last set the window's expiry: it is set again a second
# later at the earliest, to outlast the window by two seconds.
RESERVE_MANY = COMMON + BATCHED + r"""
local window = tonumber(ARGV[1])
local now = now_ms()
local horizon = now - window
local win_order = {}
local function win(z, h)
  local first = redis.call('ZRANGE', z, 0, 0, 'WITHSCORES')
  if #first > 0 and tonumber(first[2]) <= horizon then
    prune(z, h, horizon)
    first = redis.call('ZRANGE', z, 0, 0, 'WITHSCORES')
  end
  local w = {z = z, h = h, count = 0, sum = 0, zadd = {}, hset = {}, mine = {}, dirty = false, expires = true}
  if #first > 0 then
    w.first = tonumber(first[2])
    w.count = redis.call('ZCARD', z)
    local got = redis.call('HMGET', h, '_sum', '_exp')
    w.sum = tonumber(got[1]) or 0
    w.expires = now - (tonumber(got[2]) or 0) >= 1000
  end
  w.written = w.sum
  win_order[#win_order + 1] = w
  return w
end
-- what the window holds of this call so far goes to Redis (before a wait is read from it, and at the end)
local function flush(w)
  if #w.zadd > 0 then put('ZADD', w.z, w.zadd); w.zadd = {} end
  if #w.hset > 0 or w.sum ~= w.written then
    w.hset[#w.hset + 1] = '_sum'; w.hset[#w.hset + 1] = int(w.sum)
    put('HSET', w.h, w.hset); w.hset = {}; w.written = w.sum; w.dirty = true
  end
end
local wins = {}
local plans = {}
local a, k = 3, 1
for p = 1, tonumber(ARGV[2]) do
  local plan = {expire_at = ARGV[a], groups = {}}
  local groups = tonumber(ARGV[a + 1]); a = a + 2
  for g = 1, groups do
    local grp = {money = ARGV[a] == '1', windows = {}, budgets = {}, fields = {}}
    local n = tonumber(ARGV[a + 1]); a = a + 2
    for i = 1, n do
      local w = wins[KEYS[k]]
      if not w then w = win(KEYS[k], KEYS[k + 1]); wins[KEYS[k]] = w end
      grp.windows[i] = {w = w, rpm = tonumber(ARGV[a]), tpm = tonumber(ARGV[a + 1])}
      k = k + 2; a = a + 2
    end
    local nb = tonumber(ARGV[a]); a = a + 1
    for j = 1, nb do
      grp.budgets[j] = {field = ARGV[a], limit = tonumber(ARGV[a + 1])}; grp.fields[j] = ARGV[a]; a = a + 2
    end
    if nb > 0 then
      grp.fields[nb + 1] = 'requests'
      grp.m = month(KEYS[k], grp.fields, plan.expire_at); k = k + 1
    end
    plan.groups[g] = grp
  end
  plans[p] = plan
end
local replies = {}
for r = 1, (#ARGV - a + 1) / 5 do
  local groups = plans[tonumber(ARGV[a])].groups
  local rid = ARGV[a + 1]; local cost_arg = ARGV[a + 2]; local cost = tonumber(cost_arg)
  local again = ARGV[a + 3] == '1'; local spend = tonumber(ARGV[a + 4])
  a = a + 5
  local held = {}  -- (a repeat) window -> the tokens it holds of rid already, or false
  local refusal = nil
  for g, grp in ipairs(groups) do
    local amount = cost
    if grp.money then amount = spend end
    for j, b in ipairs(grp.budgets) do
      if b.limit >= 0 and grp.m.vals[b.field] + amount > b.limit then refusal = {0, g, 3, -1, j}; break end
    end
    if refusal then break end
    for i, spec in ipairs(grp.windows) do
      local w = spec.w
      if again then
        local was = w.mine[rid]
        if was == nil then was = tonumber(redis.call('HGET', w.h, rid)) or false end
        held[spec] = was
      end
      local wait = 0
      if not held[spec] and spec.rpm >= 0 and w.count >= spec.rpm then
        flush(w); wait = requests_wait(w.z, spec.rpm, w.count, window, now)
      end
      if wait ~= 0 then refusal = {0, g, 1, wait, i}; break end
      local need = cost - (held[spec] or 0)
      if spec.tpm >= 0 and w.sum + need > spec.tpm then
        flush(w); wait = tokens_wait(w.z, w.h, spec.tpm, w.sum, need, window, now)
      end
      if wait ~= 0 then refusal = {0, g, 2, wait, i}; break end
    end
    if refusal then break end
  end
  if refusal then
    replies[r] = refusal
  else
    local out = {1}
    for _, grp in ipairs(groups) do
      local amount = cost
      if grp.money then amount = spend end
      for _, spec in ipairs(grp.windows) do
        local w = spec.w
        local was = held[spec]
        if not was then
          w.zadd[#w.zadd + 1] = now; w.zadd[#w.zadd + 1] = rid
          w.count = w.count + 1
          if not w.first then w.first = now end
        end
        w.hset[#w.hset + 1] = rid; w.hset[#w.hset + 1] = cost_arg; w.mine[rid] = cost
        w.sum = w.sum + cost - (was or 0)
        out[#out + 1] = w.count; out[#out + 1] = w.sum; out[#out + 1] = math.max(0, w.first + window - now)
      end
      if grp.m then
        for _, b in ipairs(grp.budgets) do
          add(grp.m, b.field, amount)
          out[#out + 1] = grp.m.vals[b.field]
        end
        if not again then add(grp.m, 'requests', 1) end
      end
    end
    replies[r] = out
  end
end
for _, w in ipairs(win_order) do
  if w.expires and (#w.zadd > 0 or #w.hset > 0 or w.dirty) then
    w.hset[#w.hset + 1] = '_exp'; w.hset[#w.hset + 1] = now
  end
  flush(w)
  if w.dirty and w.expires then
    redis.call('PEXPIRE', w.z, window + 2000); redis.call('PEXPIRE', w.h, window + 2000)
  end
end
write_months()
return replies
"""

# Many settlements in one call, applied as SETTLE applies them one after the other (first attempts:
# a settlement tried again goes alone, with SETTLE's `again`).
# KEYS: per plan, its SETTLE keys.
# ARGV: P, then per plan: month_expire_at, G, then per group: U, N, B, field1, ..., fieldB; then per
#       settlement: plan (1..P), rid, used, delta, release (0/1), spend_delta.
# -> the number of settlements
SETTLE_MANY = BATCHED + r"""
local wins, win_order = {}, {}
local plans = {}
local a, k = 2, 1
for p = 1, tonumber(ARGV[1]) do
  local plan = {expire_at = ARGV[a], groups = {}}
  local groups = tonumber(ARGV[a + 1]); a = a + 2
  for g = 1, groups do
    local grp = {money = ARGV[a] == '1', windows = {}, fields = {}}
    local n = tonumber(ARGV[a + 1]); local nb = tonumber(ARGV[a + 2]); a = a + 3
    for i = 1, n do
      local w = wins[KEYS[k]]
      if not w then
        w = {z = KEYS[k], h = KEYS[k + 1], rids = {}, held = {}, hset = {}, hdel = {}, dsum = 0}
        wins[KEYS[k]] = w; win_order[#win_order + 1] = w
      end
      grp.windows[i] = w
      k = k + 2
    end
    for j = 1, nb do grp.fields[j] = ARGV[a]; a = a + 1 end
    if nb > 0 then grp.month = KEYS[k]; k = k + 1 end
    plan.groups[g] = grp
  end
  plans[p] = plan
end
local first = a
for _ = 1, (#ARGV - first + 1) / 6 do  -- which requests each window is asked about
  for _, grp in ipairs(plans[tonumber(ARGV[a])].groups) do
    for _, w in ipairs(grp.windows) do w.rids[#w.rids + 1] = ARGV[a + 1] end
  end
  a = a + 6
end
for _, w in ipairs(win_order) do
  for i = 1, #w.rids, 500 do
    local part = {}
    for j = i, math.min(i + 499, #w.rids) do part[#part + 1] = w.rids[j] end
    local got = redis.call('HMGET', w.h, unpack(part))
    for j, rid in ipairs(part) do w.held[rid] = tonumber(got[j]) or false end
  end
end
a = first
local count = 0
while a <= #ARGV do
  local plan = plans[tonumber(ARGV[a])]
  local rid = ARGV[a + 1]; local used_arg = ARGV[a + 2]; local used = tonumber(used_arg)
  local delta = tonumber(ARGV[a + 3]); local release = ARGV[a + 4] == '1'; local spend_delta = tonumber(ARGV[a + 5])
  a = a + 6; count = count + 1
  for _, grp in ipairs(plan.groups) do
    for _, w in ipairs(grp.windows) do
      local held = w.held[rid]
      if held then
        if release then
          w.hdel[#w.hdel + 1] = rid; w.held[rid] = false; w.dsum = w.dsum - held
        else
          w.hset[#w.hset + 1] = rid; w.hset[#w.hset + 1] = used_arg; w.held[rid] = used
          w.dsum = w.dsum + used - held
        end
      end
    end
    if grp.month then
      local amount = delta
      if grp.money then amount = spend_delta end
      local fields = grp.fields
      if release then fields = {unpack(grp.fields)}; fields[#fields + 1] = 'requests' end
      local m = month(grp.month, fields, plan.expire_at)
      for _, f in ipairs(grp.fields) do
        if m.vals[f] + amount < 0 then add(m, f, -m.vals[f]) else add(m, f, amount) end
      end
      if release then add(m, 'requests', -1) end
    end
  end
end
for _, w in ipairs(win_order) do
  if #w.hset > 0 then put('HSET', w.h, w.hset) end
  if #w.hdel > 0 then put('HDEL', w.h, w.hdel); put('ZREM', w.z, w.hdel) end
  if w.dsum ~= 0 then redis.call('HINCRBY', w.h, '_sum', int(w.dsum)) end
end
write_months()
return count
"""
