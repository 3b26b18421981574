"""The Lua scripts of the Redis store (key layout: see ``redis.py`` and docs/stores.md).

Redis runs a script without interleaving any other command, which is what makes a commit batch
(version checks, inbox, outbox, metrics history, snapshot) atomic with respect to other clients.
Every script but the trim (which gets its two keys as ``KEYS``) takes the key prefix as ``ARGV[1]``
and builds its keys from it.
"""

from __future__ import annotations

__all__ = [
    "APPEND_SCRIPT",
    "COMMIT_SCRIPT",
    "MARK_SCRIPT",
    "MIGRATE_STATUS_SCRIPT",
    "STATUS_SCRIPT",
    "TRIM_SCRIPT",
]

COMMIT_SCRIPT = """
local p, now, keep, mkeep = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local commits = cjson.decode(ARGV[5])
local arg = 6
local out = {}
for i, c in ipairs(commits) do
  local goal, expected, events, sids, npoints = c[1], c[2], c[3], c[4], c[5]
  local snapshot = ARGV[arg]
  arg = arg + 1
  local gkey = p .. 'g:' .. goal
  local cur = redis.call('HMGET', gkey, 'v', 'n', 'm')
  local version, inbox_n, metrics_n = tonumber(cur[1]) or 0, tonumber(cur[2]) or 0, tonumber(cur[3]) or 0
  if version ~= expected then
    out[i] = {0, version, {}, {}, 0}
    arg = arg + #sids + npoints
  else
    local ikey = p .. 'in:' .. goal
    local dup_e, dup_s = {}, {}
    for _, e in ipairs(events) do
      if redis.call('ZSCORE', ikey, e) then
        dup_e[#dup_e + 1] = e
      else
        inbox_n = inbox_n + 1
        redis.call('ZADD', ikey, inbox_n, e)
      end
    end
    if redis.call('ZCARD', ikey) > keep then
      redis.call('ZREMRANGEBYRANK', ikey, 0, -(keep + 1))
    end
    for _, sid in ipairs(sids) do
      local skey = p .. 'out:' .. sid
      if redis.call('EXISTS', skey) == 1 then
        dup_s[#dup_s + 1] = sid
      else
        local pos = redis.call('INCR', p .. 'outpos')
        redis.call('HSET', skey, 'g', goal, 'v', version + 1, 'p', ARGV[arg], 't', now, 'd', 0)
        redis.call('ZADD', p .. 'pending', pos, sid)
        redis.call('ZADD', p .. 'pendg:' .. goal, pos, sid)
        redis.call('ZADD', p .. 'outg:' .. goal, version + 1, string.format('%016d', pos) .. '|' .. sid)
      end
      arg = arg + 1
    end
    if npoints > 0 then
      local mkey = p .. 'mx:' .. goal
      for _ = 1, npoints do
        metrics_n = metrics_n + 1
        redis.call('ZADD', mkey, metrics_n, string.format('%d', metrics_n) .. ' ' .. now .. ' ' .. ARGV[arg])
        arg = arg + 1
      end
      if metrics_n > mkeep then
        redis.call('ZREMRANGEBYSCORE', mkey, '-inf', metrics_n - mkeep)
      end
    end
    redis.call('HSET', gkey, 'v', version + 1, 's', snapshot, 't', now, 'n', inbox_n, 'm', metrics_n)
    if version == 0 then
      redis.call('HSET', gkey, 'st', 'active')
      redis.call('ZADD', p .. 'gst:active', 0, goal)
    end
    redis.call('ZADD', p .. 'goals', 0, goal)
    out[i] = {1, version + 1, dup_e, dup_s, metrics_n}
  end
end
return out
"""

STATUS_SCRIPT = """
local p, goal, st = ARGV[1], ARGV[2], ARGV[3]
local gkey = p .. 'g:' .. goal
if redis.call('HEXISTS', gkey, 'v') == 0 then return 0 end
local old = redis.call('HGET', gkey, 'st') or 'active'
if old ~= st then
  redis.call('ZREM', p .. 'gst:' .. old, goal)
  redis.call('HSET', gkey, 'st', st)
end
redis.call('ZADD', p .. 'gst:' .. st, 0, goal)
return 1
"""

APPEND_SCRIPT = """
local p, now = ARGV[1], ARGV[2]
local events = cjson.decode(ARGV[3])
local out = {}
for i, e in ipairs(events) do
  local goal, id = e[1], e[2]
  local lkey = p .. 'log:' .. goal
  if not redis.call('ZSCORE', lkey, id) then
    local seq = redis.call('INCR', p .. 'loghead:' .. goal)
    redis.call('ZADD', lkey, seq, id)
    redis.call('HSET', p .. 'logp:' .. goal, id, now .. ' ' .. ARGV[3 + i])
    out[#out + 1] = {goal, id, seq}
  end
end
return out
"""

TRIM_SCRIPT = """
local lkey, pkey = KEYS[1], KEYS[2]
local ids = redis.call('ZRANGEBYSCORE', lkey, '-inf', '(' .. ARGV[1])
for _, id in ipairs(ids) do redis.call('HDEL', pkey, id) end
redis.call('ZREMRANGEBYSCORE', lkey, '-inf', '(' .. ARGV[1])
return #ids
"""

MARK_SCRIPT = """
local p, now = ARGV[1], ARGV[2]
local count = 0
for i = 3, #ARGV do
  local sid = ARGV[i]
  if redis.call('ZREM', p .. 'pending', sid) == 1 then
    local skey = p .. 'out:' .. sid
    redis.call('ZREM', p .. 'pendg:' .. redis.call('HGET', skey, 'g'), sid)
    redis.call('HSET', skey, 'd', now)
    count = count + 1
  end
end
return count
"""

MIGRATE_STATUS_SCRIPT = """
local p = ARGV[1]
for i = 2, #ARGV do
  local goal = ARGV[i]
  local gkey = p .. 'g:' .. goal
  if redis.call('HEXISTS', gkey, 'v') == 1 then
    local st = redis.call('HGET', gkey, 'st')
    if not st then
      st = 'active'
      redis.call('HSET', gkey, 'st', st)
    end
    redis.call('ZADD', p .. 'gst:' .. st, 0, goal)
  end
end
return #ARGV - 1
"""
