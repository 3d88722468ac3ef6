"""Lua scripts of leases (lease.py): LEASE counts a block of requests, tokens and money in every
window and budget of a plan at once; RETURN puts back what the block did not use and leaves, in
the block's place, the requests it admitted."""

from lockgate.proxy.quota.lua import COMMON

# A lease's members in a window: lid#1 .. lid#n
MEMBERS = r"""
local function members(lid, n)
  local out = {}
  for i = 1, n do out[i] = lid .. '#' .. i end
  return out
end
"""

# A lease of n requests, `tokens` tokens and `spend` money, granted only if every limit it touches
# has `room` times as much left. In each window the block is n members of the sorted set, all at the
# end of the lease's life (now + life_ms: no request it admits is later), its tokens on the first one;
# the budgets count its tokens (or money) at once.
# KEYS: per group: z1, h1, ..., zN, hN [, month], then the lease's marker
# ARGV: window_ms, lid, n, tokens, spend, room, month_expire_at, marker_ttl, life_ms, G, groups (as RESERVE)
# -> {1, now_ms, per group: count1, sum1, reset1, ..., used1, ...} or {0}
LEASE = COMMON + MEMBERS + r"""
local window = tonumber(ARGV[1]); local lid = ARGV[2]; local n = tonumber(ARGV[3])
local tokens = tonumber(ARGV[4]); local spend = tonumber(ARGV[5]); local room = tonumber(ARGV[6])
local expire_at = tonumber(ARGV[7]); local ttl = tonumber(ARGV[8]); local life = tonumber(ARGV[9])
local groups = read_groups(10, tokens, spend)
local now = now_ms()
for _, grp in ipairs(groups) do
  for _, b in ipairs(grp.budgets) do
    if b.limit >= 0 and (tonumber(redis.call('HGET', grp.month, b.field)) or 0) + room * grp.amount > b.limit then
      return {0}
    end
  end
  for _, w in ipairs(grp.windows) do
    prune(w.z, w.h, now - window)
    if w.rpm >= 0 and redis.call('ZCARD', w.z) + room * n > w.rpm then return {0} end
    if w.tpm >= 0 and (tonumber(redis.call('HGET', w.h, '_sum')) or 0) + room * tokens > w.tpm then return {0} end
  end
end
local scored = {}
for i, m in ipairs(members(lid, n)) do scored[2 * i - 1] = now + life; scored[2 * i] = m end
local out = {1, now}
for _, grp in ipairs(groups) do
  for _, w in ipairs(grp.windows) do
    for i = 1, #scored, 1000 do redis.call('ZADD', w.z, unpack(scored, i, math.min(i + 999, #scored))) end
    redis.call('HSET', w.h, lid .. '#1', tokens)
    local sum = redis.call('HINCRBY', w.h, '_sum', tokens)
    redis.call('PEXPIRE', w.z, window + life + 1000); redis.call('PEXPIRE', w.h, window + life + 1000)
    out[#out + 1] = redis.call('ZCARD', w.z); out[#out + 1] = sum; out[#out + 1] = oldest_reset(w.z, now, window)
  end
  if grp.month then
    for _, b in ipairs(grp.budgets) do
      out[#out + 1] = redis.call('HINCRBY', grp.month, b.field, grp.amount)
    end
    redis.call('EXPIREAT', grp.month, expire_at)
  end
end
redis.call('SET', KEYS[#KEYS], 1, 'EX', ttl)
return out
"""

# Returns a lease, once (its marker tells). In each window the block keeps a member per request it
# admitted (the first `used` members; the others leave) and, on its first member, the tokens of those
# settled; a request not settled yet (or settled with nothing: a failover may admit it again by its id)
# takes the place of one member under its own id, with its tokens, for its settlement to find. The
# budgets keep what was used; the month counts the requests.
# KEYS: as LEASE
# ARGV: window_ms, lid, n, tokens, spend, spent, month_expire_at, used, settled_tokens, M, (rid, tokens) x M, G,
#       groups (as RESERVE)
# -> 1, or 0 when it was returned already
RETURN = COMMON + MEMBERS + r"""
if redis.call('DEL', KEYS[#KEYS]) == 0 then return 0 end
local window = tonumber(ARGV[1]); local lid = ARGV[2]; local n = tonumber(ARGV[3])
local tokens = tonumber(ARGV[4]); local spend = tonumber(ARGV[5]); local spent = tonumber(ARGV[6])
local expire_at = tonumber(ARGV[7]); local used = tonumber(ARGV[8]); local settled = tonumber(ARGV[9])
local m = tonumber(ARGV[10])
local kept = settled
for i = 1, m do kept = kept + tonumber(ARGV[10 + 2 * i]) end
local groups = read_groups(11 + 2 * m, tokens, spend)
local first = lid .. '#1'
local gone = {}  -- the members that leave: the unused ones, then one per request entering under its own id
for i = math.max(1, used - m + 1), n do gone[#gone + 1] = lid .. '#' .. i end
for _, grp in ipairs(groups) do
  local took, charged = tokens, kept
  if grp.money then took, charged = spend, spent end
  for _, w in ipairs(grp.windows) do
    local at = redis.call('ZSCORE', w.z, first)
    local held = tonumber(redis.call('HGET', w.h, first))
    if at and held then  -- (not yet pruned with the block)
      for i = 1, #gone, 1000 do redis.call('ZREM', w.z, unpack(gone, i, math.min(i + 999, #gone))) end
      local sum = settled - held
      if used - m >= 1 then redis.call('HSET', w.h, first, settled) else redis.call('HDEL', w.h, first) end
      for i = 1, m do
        local rid = ARGV[10 + 2 * i - 1]; local t = tonumber(ARGV[10 + 2 * i])
        if redis.call('HEXISTS', w.h, rid) == 0 then  -- (unless a failover's repeat entered it already)
          redis.call('ZADD', w.z, at, rid); redis.call('HSET', w.h, rid, t)
          sum = sum + t
        end
      end
      redis.call('HINCRBY', w.h, '_sum', sum)
    end
  end
  if grp.month then
    for _, b in ipairs(grp.budgets) do
      if tonumber(redis.call('HINCRBY', grp.month, b.field, charged - took)) < 0 then
        redis.call('HSET', grp.month, b.field, 0)
      end
    end
    redis.call('HINCRBY', grp.month, 'requests', used)
    redis.call('EXPIREAT', grp.month, expire_at)
  end
end
return 1
"""
