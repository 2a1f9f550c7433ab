-- Strict-priority pop into the caller's in-flight lists, atomically.
--
-- Why a script and not streams: original clients LPUSH onto plain lists and
-- original nodes RPOP them, so the queue must stay a list during a
-- migration. LMOVE inside a script keeps every item inside some list at all
-- times. Scripts cannot block on Redis 7.0, so the caller waits outside
-- (BLMOVE on the top list) and calls this when woken or on timeout.
--
-- KEYS[1..n]      source lists, highest priority first
-- KEYS[n+1..2n]   the caller's in-flight list for each source, same order
-- ARGV[1]         maximum number of items to take
-- Returns a flat array: source index (1-based), item, source index, item, ...
local n = #KEYS / 2
local max = tonumber(ARGV[1])
local out = {}
local taken = 0
for i = 1, n do
  while taken < max do
    local item = redis.call('LMOVE', KEYS[i], KEYS[n + i], 'RIGHT', 'LEFT')
    if not item then break end
    out[#out + 1] = i
    out[#out + 1] = item
    taken = taken + 1
  end
  if taken >= max then break end
end
return out
