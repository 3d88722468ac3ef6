"""Lua scripts of the Redis store that take a batch of calls (redis_batch.py): RESERVE_MANY and
SETTLE_MANY decide as RESERVE and SETTLE (lua.py) would, one call after the other, over the same keys."""

from lockgate.proxy.quota.lua import COMMON

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
