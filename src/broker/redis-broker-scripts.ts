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
 */

/**
 * Numbers, logs and announces one event.
 * ARGV: prefix, task id, kind (`event`, `created` or `removed`), the event's JSON before and
 * after its seq, owner ('' for none), '1' for progress, progress kept, events kept
 * service-wide, and for a terminal event the time its log may outlive it in ms ('' if not).
 * `removed` deletes the task's stream. Returns {seq, position}.
 */
export const PUBLISH = `
local p, id, kind, head, tail, owner, progress = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local progressHistory, allHistory, ttl = tonumber(ARGV[8]), ARGV[9], ARGV[10]
local all = p .. ':events'
local key = p .. ':events:' .. id

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
end
local json = head .. seq .. tail

if kind == 'event' then
  local fields = {'j', json, 'p', position}
  if owner ~= '' then fields[#fields + 1] = 'o'; fields[#fields + 1] = owner end
  if progress == '1' then fields[#fields + 1] = 'g'; fields[#fields + 1] = '1' end
  if ttl ~= '' then fields[#fields + 1] = 'e'; fields[#fields + 1] = '1' end
  redis.call('XADD', key, seq .. '-0', unpack(fields))
  -- Keep every lifecycle event and between 1x and 2x progressHistory progress events.
  if progress == '1' and redis.call('XLEN', key) > 2 * progressHistory then
    local ids = {}
    for _, entry in ipairs(redis.call('XRANGE', key, '-', '+')) do
      local f = entry[2]
      for i = 1, #f, 2 do
        if f[i] == 'g' then ids[#ids + 1] = entry[1]; break end
      end
    end
    local drop = #ids - progressHistory
    for i = 1, drop, 500 do
      redis.call('XDEL', key, unpack(ids, i, math.min(i + 499, drop)))
    end
  end
  if ttl ~= '' then redis.call('PEXPIRE', key, ttl) end
elseif kind == 'removed' then
  redis.call('DEL', key)
end

local fields = {'j', json, 't', id}
if owner ~= '' then fields[#fields + 1] = 'o'; fields[#fields + 1] = owner end
redis.call('XADD', all, 'MAXLEN', '~', allHistory, position .. '-0', unpack(fields))
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
