-- Claim chosen items of a source list for a batched pull: each item that is
-- still in the list moves into the caller's in-flight list, atomically, so an
-- item is never outside a list (as with pop.lua). An item another node took
-- in the meantime is simply not claimed.
--
-- The caller picked the items from an LRANGE of the list's pop end; LREM
-- with a negative count searches from that end, so each removal is cheap.
--
-- A batch never grows while a list of higher priority has work: a `level1`
-- message that arrived after the first item was taken must not wait behind
-- more low-priority pulls than were already taken (checked in the same
-- atomic step as the claim).
--
-- KEYS[1]  the source list
-- KEYS[2]  the caller's in-flight list for it
-- KEYS[3..] the lists of higher priority than the source list
-- ARGV     the items (exact bytes)
-- Returns an array of 1 (claimed) / 0 (gone or not claimed), one per item.
local out = {}
for k = 3, #KEYS do
  if redis.call('LLEN', KEYS[k]) > 0 then
    for i = 1, #ARGV do
      out[i] = 0
    end
    return out
  end
end
for i = 1, #ARGV do
  if redis.call('LREM', KEYS[1], -1, ARGV[i]) > 0 then
    redis.call('LPUSH', KEYS[2], ARGV[i])
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
