/**
 * The Lua scripts of RedisTaskStore: each status change keeps the indexes and counts in
 * step in the same atomic step as the record, so two instances never see them disagree.
 * Keys are derived from the prefix (ARGV[1]); a task's hash holds its record's fields
 * JSON-encoded, plus `_idem` (the idempotency key naming it, if any) and `_cancel` (the
 * reason of a cancel requested, if any).
 */

/** Shared helpers: index and count maintenance for one task. */
const HELPERS = `
local function index(p, id, status, owner, delta)
  if delta > 0 then
    redis.call('ZADD', p .. ':status:' .. status, 0, id)
  else
    redis.call('ZREM', p .. ':status:' .. status, id)
  end
  redis.call('HINCRBY', p .. ':counts', status, delta)
  if owner ~= cjson.null then
    redis.call('HINCRBY', p .. ':counts:' .. owner, status, delta)
  end
end

-- A record's share of MAX_RETAINED_BYTES (its input, result and error as JSON) is kept in
-- its field _bytes, and the sum over every record in the field records of {prefix}:bytes.
local function resize(p, key)
  local bytes = redis.call('HSTRLEN', key, 'input') + redis.call('HSTRLEN', key, 'result') + redis.call('HSTRLEN', key, 'error')
  local before = tonumber(redis.call('HGET', key, '_bytes') or '0')
  if bytes ~= before then
    redis.call('HSET', key, '_bytes', bytes)
    redis.call('HINCRBY', p .. ':bytes', 'records', bytes - before)
  end
end

local function remove(p, id)
  local key = p .. ':task:' .. id
  local fields = redis.call('HMGET', key, 'status', 'owner', '_idem', '_bytes')
  if not fields[1] then return false end
  if fields[4] then redis.call('HINCRBY', p .. ':bytes', 'records', -tonumber(fields[4])) end
  local status = cjson.decode(fields[1])
  local owner = cjson.decode(fields[2])
  index(p, id, status, owner, -1)
  redis.call('ZREM', p .. ':tasks', id)
  if owner ~= cjson.null then
    redis.call('ZREM', p .. ':owner:' .. owner, id)
    if redis.call('ZCARD', p .. ':owner:' .. owner) == 0 then
      redis.call('DEL', p .. ':owner:' .. owner, p .. ':counts:' .. owner)
    end
  end
  if fields[3] then redis.call('DEL', fields[3]) end
  redis.call('ZREM', p .. ':expiry', id)
  redis.call('DEL', key)
  return fields[2]
end
`;

/**
 * Stores a new task unless its owner's idempotency key already names one.
 * ARGV: prefix, id, status, owner (JSON), idempotency key ('' for none), fingerprint,
 * expiry score ('' unless ended), then field, value, … Returns {1} when created,
 * {2, hash…} (the earlier task) for the same fingerprint, {3, task id} for another.
 */
export const CREATE = `${HELPERS}
local p, id, status, owner, idem, fp, expiry = ARGV[1], ARGV[2], ARGV[3], cjson.decode(ARGV[4]), ARGV[5], ARGV[6], ARGV[7]
if idem ~= '' then
  local existing = redis.call('GET', idem)
  if existing then
    local space = string.find(existing, ' ', 1, true)
    local earlier = string.sub(existing, 1, space - 1)
    local hash = redis.call('HGETALL', p .. ':task:' .. earlier)
    if #hash > 0 then
      if string.sub(existing, space + 1) == fp then return {2, hash} end
      return {3, earlier}
    end
  end
  redis.call('SET', idem, id .. ' ' .. fp)
end
local key = p .. ':task:' .. id
redis.call('HSET', key, unpack(ARGV, 8))
if idem ~= '' then redis.call('HSET', key, '_idem', idem) end
resize(p, key)
redis.call('ZADD', p .. ':tasks', 0, id)
if owner ~= cjson.null then redis.call('ZADD', p .. ':owner:' .. owner, 0, id) end
index(p, id, status, owner, 1)
if expiry ~= '' then redis.call('ZADD', p .. ':expiry', expiry, id) end
return {1}
`;

/**
 * Applies changes to a task only if its status is one of the allowed ones (and, when asked,
 * no cancel was requested: see REQUEST_CANCEL).
 * ARGV: prefix, id, allowed statuses (comma-separated), new status ('' when unchanged),
 * expiry score when the change ends the task ('' otherwise), '1' to leave `input` out of
 * the answer (the caller has it), '1' to refuse if a cancel was requested, then field,
 * value, …
 * Returns {1, hash…} (the record before) when applied, {0, hash…} (the record as it is)
 * when its status was not allowed, {2, hash…, reason} when a cancel was requested, and {}
 * when the task is gone.
 */
export const TRANSITION = `${HELPERS}
local p, id, allowed, status, expiry, omitInput = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6] == '1'
local unlessCancelRequested = ARGV[7] == '1'
local key = p .. ':task:' .. id
local hash = redis.call('HGETALL', key)
if #hash == 0 then return {} end
local current, cancelRequested
local answer = {}
for i = 1, #hash, 2 do
  local field = hash[i]
  if field == 'status' then current = cjson.decode(hash[i + 1]) end
  if field == '_cancel' then cancelRequested = hash[i + 1] end
  -- A task's input never changes and can be large: send it only to a caller without it.
  if not (omitInput and field == 'input') then
    answer[#answer + 1] = field
    answer[#answer + 1] = hash[i + 1]
  end
end
if not string.find(',' .. allowed .. ',', ',' .. current .. ',', 1, true) then return {0, answer} end
if unlessCancelRequested and cancelRequested then return {2, answer, cancelRequested} end
if #ARGV > 7 then
  redis.call('HSET', key, unpack(ARGV, 8))
  for i = 8, #ARGV, 2 do
    local field = ARGV[i]
    if field == 'input' or field == 'result' or field == 'error' then
      resize(p, key)
      break
    end
  end
end
if status ~= '' and status ~= current then
  local owner = cjson.decode(redis.call('HGET', key, 'owner'))
  index(p, id, current, owner, -1)
  index(p, id, status, owner, 1)
  if expiry ~= '' then
    redis.call('ZADD', p .. ':expiry', expiry, id)
  else
    redis.call('ZREM', p .. ':expiry', id)
  end
end
return {1, answer}
`;

/**
 * Marks a task that has not ended as cancelled by request (its field _cancel: the first
 * request's reason), so that transitions asked to refuse then do.
 * ARGV: prefix, id, reason. Returns {1, hash…, reason that stands} when marked (now or
 * before), {0, hash…} when the task has ended, and {} when it is gone.
 */
export const REQUEST_CANCEL = `
local key = ARGV[1] .. ':task:' .. ARGV[2]
local hash = redis.call('HGETALL', key)
if #hash == 0 then return {} end
local status, standing
for i = 1, #hash, 2 do
  if hash[i] == 'status' then status = cjson.decode(hash[i + 1]) end
  if hash[i] == '_cancel' then standing = hash[i + 1] end
end
if status == 'completed' or status == 'failed' or status == 'cancelled' then return {0, hash} end
if not standing then
  standing = ARGV[3]
  redis.call('HSET', key, '_cancel', standing)
end
return {1, hash, standing}
`;

/** Deletes a task and every key of it. ARGV: prefix, id. Returns its hash, or {} if gone. */
export const DELETE = `${HELPERS}
local hash = redis.call('HGETALL', ARGV[1] .. ':task:' .. ARGV[2])
if #hash > 0 then remove(ARGV[1], ARGV[2]) end
return hash
`;
