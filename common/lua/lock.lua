-- An expiring lock with an owner, in one place so each step is atomic.
--
-- KEYS[1]  the lock
-- ARGV[1]  the caller's token (its node id)
-- ARGV[2]  `take`, `refresh` or `release`
-- ARGV[3]  TTL in ms (take, refresh)
-- take:    sets the lock when free, or when the caller already holds it
--          (a restart of the same node after a crash); 1 = held now
-- refresh: extends the TTL only while the caller holds it; 1 = extended
-- release: deletes it only while the caller holds it; 1 = released
local cur = redis.call('GET', KEYS[1])
local mode = ARGV[2]
if mode == 'take' then
  if cur == false or cur == ARGV[1] then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
    return 1
  end
  return 0
end
if cur ~= ARGV[1] then
  return 0
end
if mode == 'refresh' then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return 1
end
redis.call('DEL', KEYS[1])
return 1
