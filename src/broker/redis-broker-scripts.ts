/**
 * The Lua scripts of RedisBroker. Numbering and logging an event is one atomic step, so
 * every instance agrees on each task's seq and on the service-wide position.
 *
 * A task's stream `{prefix}:events:{id}` has entry ids `{seq}-0`, fields `j` (the event's
 * JSON), `p` (its position), `o` (its owner, absent for none), `g` (present on progress)
 * and `e` (present on the terminal event).
 * The service-wide stream `{prefix}:events` has entry ids `{position}-0`, fields `j`, `t`
 * (the task id) and `o`. Positions go up by one per event; the first one is Redis's clock in
 * microseconds, so a position from an earlier log is always older than any retained one.
 *
 * Bytes (each entry's `j`, counted in every stream that holds it) are kept as running
 * totals: `{prefix}:bytes` fields `task_events` and `all_events`, and `{prefix}:event-bytes`
 * (task id → the bytes of its stream), so dropping a task's stream subtracts them.
 *
 * `{prefix}:creating:{id}` (set by RedisBroker.expectCreated, with a time to live) says the
 * task's task_created is on its way: its first event is not logged before it.
 */

/**
 * Numbers, logs and announces one event.
 * ARGV: prefix, task id, kind (`event`, `created` or `removed`), the event's JSON before and
 * after its seq, owner ('' for none), '1' for progress, progress kept, events kept
 * service-wide, for a terminal event the time its log may outlive it in ms ('' if not), and
 * the bytes the service-wide stream may hold, and '1' to log a task's first event even if its
 * task_created is still on its way. `removed` deletes the task's stream.
 * The service-wide stream keeps its newest entry always, between `events kept` and twice as
 * many entries but never more than 100 over (it is trimmed back in batches), and at most
 * its bytes.
 * Returns {seq, position}, or {-1, 0} when the event is its task's first and its
 * task_created is on its way (another instance is creating it): nothing was logged.
 */
export const PUBLISH = `
local p, id, kind, head, tail, owner, progress = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local progressHistory, allHistory, ttl, allBytesMax = tonumber(ARGV[8]), tonumber(ARGV[9]), ARGV[10], tonumber(ARGV[11])
local beforeCreated = ARGV[12] == '1'
local all = p .. ':events'
local key = p .. ':events:' .. id
local bytes = p .. ':bytes'

local last = redis.call('XREVRANGE', all, '+', '-', 'COUNT', 1)[1]
local position
if last then
  position = tonumber(string.match(last[1], '^%d+')) + 1
else
  local now = redis.call('TIME')
  position = tonumber(now[1]) * 1000000 + tonumber(now[2])
end
position = string.format('%.0f', position)

local seq = 0
if kind == 'event' then
  local lastOfTask = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)[1]
  if lastOfTask then seq = tonumber(string.match(lastOfTask[1], '^%d+')) + 1 else seq = 1 end
  if seq == 1 and redis.call('EXISTS', p .. ':creating:' .. id) == 1 then
    if not beforeCreated then return {-1, 0} end
    redis.call('DEL', p .. ':creating:' .. id)
  end
elseif kind == 'created' then
  redis.call('DEL', p .. ':creating:' .. id)
end
local json = head .. seq .. tail

if kind == 'event' then
  local fields = {'j', json, 'p', position}
  if owner ~= '' then fields[#fields + 1] = 'o'; fields[#fields + 1] = owner end
  if progress == '1' then fields[#fields + 1] = 'g'; fields[#fields + 1] = '1' end
  if ttl ~= '' then fields[#fields + 1] = 'e'; fields[#fields + 1] = '1' end
  redis.call('XADD', key, seq .. '-0', unpack(fields))
  local added = #json
  -- Keep every lifecycle event and between 1x and 2x progressHistory progress events.
  if progress == '1' and redis.call('XLEN', key) > 2 * progressHistory then
    local ids, sizes = {}, {}
    for _, entry in ipairs(redis.call('XRANGE', key, '-', '+')) do
      local f = entry[2]
      local size, isProgress = 0, false
      for i = 1, #f, 2 do
        if f[i] == 'g' then isProgress = true elseif f[i] == 'j' then size = #f[i + 1] end
      end
      if isProgress then ids[#ids + 1] = entry[1]; sizes[#sizes + 1] = size end
    end
    local drop = #ids - progressHistory
    for i = 1, drop do added = added - sizes[i] end
    for i = 1, drop, 500 do
      redis.call('XDEL', key, unpack(ids, i, math.min(i + 499, drop)))
    end
  end
  redis.call('HINCRBY', bytes, 'task_events', added)
  redis.call('HINCRBY', p .. ':event-bytes', id, added)
  if ttl ~= '' then redis.call('PEXPIRE', key, ttl) end
elseif kind == 'removed' then
  local held = redis.call('HGET', p .. ':event-bytes', id)
  if held then
    redis.call('HINCRBY', bytes, 'task_events', -tonumber(held))
    redis.call('HDEL', p .. ':event-bytes', id)
  end
  redis.call('DEL', key)
end

local fields = {'j', json, 't', id}
if owner ~= '' then fields[#fields + 1] = 'o'; fields[#fields + 1] = owner end
redis.call('XADD', all, position .. '-0', unpack(fields))
local allBytes = redis.call('HINCRBY', bytes, 'all_events', #json)
local length = redis.call('XLEN', all)
-- Oldest first: past allHistory + min(allHistory, 100) entries, back to allHistory; past the
-- bytes, until under them. The newest entry stays: its id is where the next position is
-- counted from.
local excess = 0
if length > allHistory + math.min(allHistory, 100) then excess = length - allHistory end
if excess > 0 or allBytes > allBytesMax then
  local dropped, count, last = 0, 0, nil
  local from = '-'
  local done = false
  while not done do
    local batch = redis.call('XRANGE', all, from, '+', 'COUNT', 100)
    for _, entry in ipairs(batch) do
      if count >= length - 1 or (count >= excess and allBytes - dropped <= allBytesMax) then done = true; break end
      local f = entry[2]
      for i = 1, #f, 2 do
        if f[i] == 'j' then dropped = dropped + #f[i + 1]; break end
      end
      count = count + 1
      last = entry[1]
    end
    if #batch < 100 then done = true end
    if last then from = '(' .. last end
  end
  if last then
    redis.call('XTRIM', all, 'MINID', string.match(last, '^%d+') .. '-1')
    redis.call('HINCRBY', bytes, 'all_events', -dropped)
  end
end
return {seq, position}
`;

/**
 * The newest position and, with ARGV[2], the service-wide log after that position if all of
 * it is retained. ARGV: prefix, position ('' for none). Returns {newest} or {newest, entries}
 * (entries only when complete). With nothing logged, newest is Redis's clock in
 * microseconds minus one: just before the first position this log will hand out.
 */
export const ALL_AFTER = `
local all = ARGV[1] .. ':events'
local last = redis.call('XREVRANGE', all, '+', '-', 'COUNT', 1)[1]
if not last then
  local now = redis.call('TIME')
  return {string.format('%.0f', tonumber(now[1]) * 1000000 + tonumber(now[2]) - 1)}
end
local newest = string.match(last[1], '^%d+')
if ARGV[2] == '' then return {newest} end
local after = tonumber(ARGV[2])
local first = redis.call('XRANGE', all, '-', '+', 'COUNT', 1)[1]
if after < tonumber(string.match(first[1], '^%d+')) - 1 or after > tonumber(newest) then return {newest} end
return {newest, redis.call('XRANGE', all, '(' .. ARGV[2] .. '-0', '+')}
`;
