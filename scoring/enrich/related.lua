-- PulseEcom: the event ids an entity's record holds in a time window, newest first (read only).
--
-- KEYS[i]  a record of state.lua (customer, ip or device)
-- ARGV     4 per key: field ('vP' / 'vO' of a customer, 'v' of an ip or device: velocity;
--          'r': the customer's return events), hi (ms, inclusive), lo (ms, exclusive), limit
-- Returns  one array of event ids per key.
local byte, sub = string.byte, string.sub
local out = {}
for i = 1, #KEYS do
  local fld = ARGV[4 * i - 3]
  local hi, lo, lim = tonumber(ARGV[4 * i - 2]), tonumber(ARGV[4 * i - 1]), tonumber(ARGV[4 * i])
  local ids = {}
  local s = redis.call('GET', KEYS[i])
  local x = s and cmsgpack.unpack(s)[fld]
  if x and fld == 'r' then
    local found = {}
    for m, ts in pairs(x) do
      if byte(m, 1) == 120 and ts > lo and ts <= hi then found[#found + 1] = {ts, sub(m, 2)} end -- 'x'
    end
    table.sort(found, function(p, q) return p[1] > q[1] end)
    for j = 1, math.min(#found, lim) do ids[j] = found[j][2] end
  elseif x then
    local j = #x - 2
    while j >= 1 and #ids < lim do
      local ts = x[j]
      if ts <= lo then break end
      if ts <= hi then ids[#ids + 1] = x[j + 2] end
      j = j - 3
    end
  end
  out[i] = ids
end
return out
