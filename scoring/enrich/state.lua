-- PulseEcom enrichment state: apply a chunk of events IN ORDER and return their features.
--
-- KEYS[1]  tenant prefix "pulse:{tenant}:" (the braces are a Redis Cluster hash tag: every key of
--          a tenant lives in one slot, so building key names here stays cluster-safe).
-- ARGV     header (H fields) then ONE string per event, fields separated by \31 (unit separator):
--            1 eid  2 type (P payment / O order / R return)  3 status (F failed / S succeeded / '')
--            4 ts_ms  5 amount_cents  6 customer  7 ip  8 device  9 payment_method  10 country
--            11 order tag: the first 12 hex digits of the SHA-1 of the order id ('e:'..eid without
--               one), computed by the client (a sha1hex here was 4 % of the script)
--          One argument per event (not eleven): argument encoding dominated the client side.
-- Returns  one binary string, 29 little-endian doubles per event (struct.pack, to avoid number
--          formatting), or the applied count when want_output is 0 (rebuild).
--
-- State: ONE record per entity, a MessagePack-encoded string (`related.lua` reads it too: keep it in
-- step):
--   customer  P..'c:'..id         f first seen, s failed-payment streak, h amount history (flat
--                                 {cents, tag, sequence, ...} by amount; hq the last sequence),
--                                 vP / vO velocity of payments /
--                                 orders, a attributes ('d:'/'i:'/'k:'/'p:'..value -> last seen),
--                                 r purchases and returns (member -> time, see below),
--                                 pn what the last order found new (its tag, then 'd:'/'i:'/'k:'
--                                 keys, or '*' for a new customer): for its own payment
--   ip        P..'i'..type..':'..ip    v velocity, c customers (id -> last seen)
--   device    P..'d'..type..':'..dev   v velocity, c customers, s failed streak, st its time (the
--                                      streak resets after DTTL of data time without attempts)
-- Velocity is a flat array {ts, cents, event id, ...} sorted by time.
--
-- Why records and not one Redis sorted set per feature: each redis.call from Lua costs ~1.6 us of
-- crossing on top of the command (measured by bench/enrich_redis.py), and the sorted-set layout
-- needed ~32 calls per payment. Here a chunk reads every record it touches with a few MGETs,
-- works on decoded Lua tables (an entity seen twice in a chunk is decoded once) and writes each
-- changed record back once with SET ... PX: about two calls per distinct entity per chunk.
--
-- Writes happen before reads, so counts include the current event and later events of the same
-- chunk see the earlier ones. Every record gets a TTL when written. Time windows are applied on
-- every read (explicit bounds), and what fell out of a window is dropped when the record is written
-- back: entries at or before the newest "out of window" bound any event set ("horizon"). Reads
-- honour the horizon, and maps drop their oldest member beyond their cap at once, so a record gives
-- the same features whether it was written back after every event (fraud-check) or once per chunk
-- (batches). One approximation: a velocity list is cut to its newest `VCAP` entries on write-back
-- only, which a LATE event (older than the list's newest) on an entity with more than `VCAP`
-- events in the window can tell apart; its counts saturate at `VCAP` either way.
--
-- Purchases and returns per customer (r, within the return window): 'o<order tag>' one member per
-- purchased order (an order event and its successful payment are ONE purchase), 'r<order tag>' one
-- per order with a return, 'x<event id>' one per return event. Members are keys, so replaying an
-- event changes nothing; without an order id the event id stands for the order.
local P = KEYS[1]
local n = tonumber(ARGV[1])
local WL = tonumber(ARGV[2])      -- long window (24 h) in ms
local WS = tonumber(ARGV[3])      -- short window (1 h) in ms
local ARET = tonumber(ARGV[4])    -- retention of customer attributes (devices, IPs, ...)
local PTTL = tonumber(ARGV[5])    -- TTL of the customer record (ms)
local VCAP = tonumber(ARGV[6])    -- max entries read/kept per velocity list / customers per ip, device
local ACAP = tonumber(ARGV[7])    -- max customer attributes kept
local HCAP = tonumber(ARGV[8])    -- amounts kept in the customer amount history
local WANT = ARGV[9] == '1'
local DTTL = tonumber(ARGV[10])   -- the device failure streak resets after this long without attempts
local RW = tonumber(ARGV[11])     -- return window (ms)
local RCAP = tonumber(ARGV[12])   -- max members kept in the purchases/returns map
local H = 12
local VTTL = WL + WS
local CTTL = math.max(PTTL, ARET, RW, VTTL)
local DEVTTL = math.max(VTTL, DTTL)
local OUTFMT = '<' .. string.rep('d', 29)

local call = redis.call
local tonum = tonumber
local byte = string.byte
local sub = string.sub
local pack = struct.pack
local mp_pack, mp_unpack = cmsgpack.pack, cmsgpack.unpack
local NEG = -math.huge

-- The eleven fields of an event line in one C call (find/sub per field cost 3x more).
local FIELDS = '^' .. string.rep('([^\31]*)\31', 10) .. '([^\31]*)$'
local match = string.match

-- ---------------------------------------------------------------------------------------------
-- records: read with MGET up front, decoded on first use, written back once at the end

local ev = {}
local keys, slot = {}, {}
local function want_key(key)
  if not slot[key] then keys[#keys + 1] = key; slot[key] = #keys end
end
-- Record keys of an event go to a[12] (customer), a[13] (ip), a[14] (device); false: none.
for e = 1, n do
  local a = {match(ARGV[H + e], FIELDS)}
  ev[e] = a
  local typ = a[2]
  local kc, ki, kd = false, false, false
  if a[6] ~= '' then kc = P .. 'c:' .. a[6]; want_key(kc) end
  if typ ~= 'R' then
    if a[7] ~= '' then ki = P .. 'i' .. typ .. ':' .. a[7]; want_key(ki) end
    if a[8] ~= '' then kd = P .. 'd' .. typ .. ':' .. a[8]; want_key(kd) end
  end
  a[12], a[13], a[14] = kc, ki, kd
end
local raw = {}
for i = 1, #keys, 500 do
  local got = call('MGET', unpack(keys, i, math.min(i + 499, #keys)))
  for j = 1, #got do raw[i + j - 1] = got[j] end
end

-- cache[key] = {rec = decoded record, ttl, dirty, hz = field -> horizon, ids = field -> set of
-- event ids (made when first needed)}
local cache = {}
local function open(key, ttl)
  local c = cache[key]
  if not c then
    local s = raw[slot[key]]
    c = {rec = s and mp_unpack(s) or {}, ttl = ttl, dirty = false, hz = {}}
    cache[key] = c
  end
  return c
end

local function horizon(c, fld, lo)
  local hz = c.hz
  local old = hz[fld]
  if not old or lo > old then hz[fld] = lo end
end

-- ---------------------------------------------------------------------------------------------
-- velocity: flat {ts, cents, eid, ...} sorted by ts

local function ids_of(c, fld)
  local all = c.ids
  if not all then all = {}; c.ids = all end
  local ids = all[fld]
  if not ids then
    ids = {}
    local v = c.rec[fld]
    if v then for i = 3, #v, 3 do ids[v[i]] = true end end
    all[fld] = ids
  end
  return ids
end

local function insert_sorted(v, t, cents, eid)
  local m = #v
  if m == 0 or v[m - 2] <= t then
    v[m + 1] = t; v[m + 2] = cents; v[m + 3] = eid
    return
  end
  local i = m - 2
  while i > 1 and v[i - 3] > t do i = i - 3 end
  table.insert(v, i, eid); table.insert(v, i, cents); table.insert(v, i, t)
end

-- Returns added (0 when the event was already there), c1, a1, c24, a24 over (t - 24 h, t].
-- `guard`: look the event id up first (the list is the replay guard); otherwise the caller knows
-- the event is new (its customer's list said so).
local function velocity(c, fld, t, eid, cents, write, guard)
  local added = 0
  local lo24, lo1 = t - WL, t - WS
  local v = c.rec[fld]
  if write then
    local ids = guard and ids_of(c, fld)
    if not (ids and ids[eid]) then
      if ids then ids[eid] = true end
      if not v then v = {}; c.rec[fld] = v end
      insert_sorted(v, t, cents, eid)
      horizon(c, fld, lo24)
      c.dirty = true
      added = 1
    end
  end
  local c1, a1, c24, a24 = 0, 0, 0, 0
  if v then
    local lo = c.hz[fld] or NEG
    if lo24 > lo then lo = lo24 end
    local i = #v - 2
    while i >= 1 do
      local ts = v[i]
      if ts <= lo then break end
      if ts <= t then
        local cc = v[i + 1]
        c24 = c24 + 1; a24 = a24 + cc
        if ts > lo1 then c1 = c1 + 1; a1 = a1 + cc end
        if c24 >= VCAP then break end
      end
      i = i - 3
    end
  end
  return added, c1, a1, c24, a24
end

local function velocity_compact(v, hz)
  local m = #v
  local first = 1
  if hz then while first <= m and v[first] <= hz do first = first + 3 end end
  if m - first + 1 > 3 * VCAP then first = m - 3 * VCAP + 1 end
  if first == 1 then return v end
  local out, k = {}, 0
  for i = first, m do k = k + 1; out[k] = v[i] end
  return out
end

-- ---------------------------------------------------------------------------------------------
-- time maps (member -> last seen or first seen): customers of an ip/device, attributes, purchases

local function map_count(map, lo, hi)  -- members with lo < time <= hi
  local m = 0
  if map then for _, ts in pairs(map) do if ts > lo and ts <= hi then m = m + 1 end end end
  return m
end

local function map_compact(map, hz, cap)
  local m, stale = 0, false
  for _, ts in pairs(map) do
    m = m + 1
    if hz and ts <= hz then stale = true end
  end
  if not stale and m <= cap then return map end
  local kept
  kept, m = {}, 0
  for k, ts in pairs(map) do
    if not hz or ts > hz then m = m + 1; kept[m] = k end
  end
  if m > cap then
    table.sort(kept, function(x, y) return map[x] > map[y] end)
    for i = cap + 1, m do kept[i] = nil end
  end
  local out = {}
  for i = 1, #kept do out[kept[i]] = map[kept[i]] end
  return out
end

-- Put member -> t in the map `fld` of a record (only when new with nx, else when new or later)
-- and keep at most `cap` members: beyond it the oldest goes (ties: the smallest member), at once,
-- so the next read sees what a record written back after every event would hold. Returns 1 when
-- the member was new.
local function map_put(c, fld, member, t, nx, cap)
  local map = c.rec[fld]
  if not map then map = {}; c.rec[fld] = map end
  local old = map[member]
  if old and (nx or t <= old) then return 0 end
  map[member] = t
  c.dirty = true
  if old then return 0 end
  local sizes = c.sizes
  if not sizes then sizes = {}; c.sizes = sizes end
  local m = sizes[fld]
  if not m then
    m = 0
    for _ in pairs(map) do m = m + 1 end
  else
    m = m + 1
  end
  if m > cap then  -- first what fell out of the window (gone once written back), then the oldest
    local hz = c.hz[fld]
    if hz then
      for key, ts in pairs(map) do
        if ts <= hz then map[key] = nil; m = m - 1 end
      end
    end
  end
  if m > cap then
    local victim, vt = nil, math.huge
    for key, ts in pairs(map) do
      if ts < vt or (ts == vt and key < victim) then victim, vt = key, ts end
    end
    map[victim] = nil
    m = m - 1
  end
  sizes[fld] = m
  return 1
end

-- Distinct customers of an ip / device within (t - 24 h, +inf), last-seen times.
local function customers(c, t, cust, write)
  local lo24 = t - WL
  local map = c.rec.c
  if write then
    map_put(c, 'c', cust, t, false, VCAP)
    map = c.rec.c
    horizon(c, 'c', lo24)
  end
  local lo = c.hz.c or NEG
  if lo24 > lo then lo = lo24 end
  local m = map_count(map, lo, math.huge)
  if m > VCAP then m = VCAP end
  return m
end

-- Purchases / returns of a customer within the return window: write (when asked), then count.
-- Returns added (0 when the member was already there), orders, returned orders, return events.
local function purchases(c, t, member, write)
  local added = 0
  local lo = t - RW
  local map = c.rec.r
  if write then
    added = map_put(c, 'r', member, t, true, RCAP)
    map = c.rec.r
    horizon(c, 'r', lo)
  end
  local hz = c.hz.r
  if hz and hz > lo then lo = hz end
  local no, nr, nx = 0, 0, 0
  if map then
    for k, ts in pairs(map) do
      if ts > lo and ts <= t then
        local c0 = byte(k, 1)
        if c0 == 111 then no = no + 1 elseif c0 == 114 then nr = nr + 1 elseif c0 == 120 then nx = nx + 1 end
      end
    end
  end
  return added, no, nr, nx
end

local function median(sorted, m)
  if m % 2 == 1 then return sorted[(m + 1) / 2] end
  return 0.5 * (sorted[m / 2] + sorted[m / 2 + 1])
end

-- Median absolute deviation of ascending values around their median, without sorting the
-- deviations: those of the values up to the median grow leftwards, the others rightwards, so the
-- two runs are merged up to the middle (the same numbers a sort would pick: med - v is exactly
-- |v - med| for v <= med).
local function mad_sorted(v, m, med)
  local lo = 0
  while lo < m and v[lo + 1] <= med do lo = lo + 1 end
  local i, j = lo, lo + 1
  local want = (m % 2 == 1) and (m + 1) / 2 or m / 2
  local d, prev
  for _ = 1, want + 1 - m % 2 do
    prev = d
    if i >= 1 and (j > m or med - v[i] <= v[j] - med) then d = med - v[i]; i = i - 1
    else d = v[j] - med; j = j + 1 end
  end
  if m % 2 == 1 then return d end
  return 0.5 * (prev + d)
end

-- The customer's amount history h: flat {cents, tag, sequence, ...} in ascending cents (so the
-- median needs no sort); beyond HCAP entries the oldest (smallest sequence) goes. One entry per
-- purchase: an order and its payment (same tag) are one amount, so a shop that sends both judges
-- a customer on as many purchases as a shop that sends payments only.
local function history_add(r, cents, tag)
  local h = r.h
  if not h then h = {}; r.h = h end
  for i = 2, #h, 3 do if h[i] == tag then return end end
  local seq = (r.hq or 0) + 1
  r.hq = seq
  local pos = #h + 1
  while pos > 1 and h[pos - 3] > cents do pos = pos - 3 end
  table.insert(h, pos, seq); table.insert(h, pos, tag); table.insert(h, pos, cents)
  if #h > 3 * HCAP then
    local at, oldest = 0, math.huge
    for k = 3, #h, 3 do if h[k] < oldest then at, oldest = k, h[k] end end
    table.remove(h, at); table.remove(h, at - 1); table.remove(h, at - 2)
  end
end

-- ---------------------------------------------------------------------------------------------
-- the events, in order

local out = {}
local k = 0
local applied_total = 0

for e = 1, n do
  local a = ev[e]
  local eid, typ, st = a[1], a[2], a[3]
  local t, cents = tonum(a[4]), tonum(a[5])
  local cust, ip, dev, pm, ctry, ptag = a[6], a[7], a[8], a[9], a[10], a[11]
  -- Short tags of the purchase (an order and its payment are one purchase): 8 hex digits in the
  -- amount history, 12 in the purchases/returns map (up to 256 members: no collision to fear).
  local otag = sub(ptag, 1, 8)
  local has_c, has_i, has_d = cust ~= '', ip ~= '', dev ~= ''

  local c1, ca1, c24, ca24 = 0, 0, 0, 0
  local i1, ia1, i24, ia24 = 0, 0, 0, 0
  local d1, da1, d24, da24 = 0, 0, 0, 0
  local ip_dc, dev_dc, dpm, ddev = 0, 0, 0, 0
  local tenure, hn, hmed, hmad, npur, nret, nrev, cfs, dfs = -1, 0, 0, 0, 0, 0, 0, 0, 0
  local new_d, new_i, new_k = 0, 0, 0
  local applied = 1

  if typ == 'R' then
    -- Returns only feed the purchases/returns map (and the customer's first-seen time).
    if has_c then
      local cc = open(a[12], CTTL)
      local added = purchases(cc, t, 'x' .. eid, true)
      if added == 0 then applied = 0 end
      local _
      _, npur, nret, nrev = purchases(cc, t, 'r' .. ptag, added == 1)
      local first = cc.rec.f
      if added == 1 and (not first or t < first) then cc.rec.f = t; first = t end
      tenure = first and math.max(0, t - first) or 0
    end
  else
    local write = true
    local vf = 'v' .. typ
    local cc
    if has_c then
      cc = open(a[12], CTTL)
      local added
      added, c1, ca1, c24, ca24 = velocity(cc, vf, t, eid, cents, true, true)
      -- The customer's velocity doubles as the replay guard: an event id already there was
      -- applied before (a re-run batch), so nothing else is mutated a second time.
      if added == 0 then write = false end
    end
    if has_i then
      local ic = open(a[13], VTTL)
      local added
      added, i1, ia1, i24, ia24 = velocity(ic, 'v', t, eid, cents, write, not has_c)
      if not has_c and write and added == 0 then write = false end
      if has_c then ip_dc = customers(ic, t, cust, write) end
    end
    if has_d then
      local dc = open(a[14], typ == 'P' and DEVTTL or VTTL)
      local added
      added, d1, da1, d24, da24 = velocity(dc, 'v', t, eid, cents, write, not has_c and not has_i)
      if not has_c and not has_i and write and added == 0 then write = false end
      if has_c then dev_dc = customers(dc, t, cust, write) end
      if typ == 'P' then
        local r = dc.rec
        if r.s and r.st and t - r.st <= DTTL then dfs = r.s end
        if write and st ~= '' then
          r.s = (st == 'F') and (dfs + 1) or 0; r.st = t; dc.dirty = true
        end
      end
    end
    if not write then applied = 0 end
    if has_c then
      local r = cc.rec
      local first = r.f
      local known = first ~= nil
      tenure = known and math.max(0, t - first) or 0
      cfs = r.s or 0
      -- Amount history: median / MAD of log1p(amount) of past purchase events. The entry of this
      -- very purchase (the order of this payment, same tag) is kept but is not history for it.
      local hist = r.h
      local vals, m = {}, 0
      if hist then
        for i = 1, #hist, 3 do
          if hist[i + 1] ~= otag then m = m + 1; vals[m] = math.log(1 + hist[i] / 100) end
        end
      end
      hn = m
      if m > 0 then
        hmed = median(vals, m)
        hmad = mad_sorted(vals, m, hmed)
      end
      -- Customer attributes: last-seen time per device / IP / country / payment method.
      local attrs = r.a
      local probe, kinds = {}, {}
      if has_d then probe[#probe + 1] = 'd:' .. dev; kinds[#kinds + 1] = 'd' end
      if has_i then probe[#probe + 1] = 'i:' .. ip; kinds[#kinds + 1] = 'i' end
      if ctry ~= '' then probe[#probe + 1] = 'k:' .. ctry; kinds[#kinds + 1] = 'k' end
      -- The order of this very purchase (same tag) may have come first and recorded the customer
      -- and the place: r.pn = {tag, what was new at that order ('*': the customer itself)}. It was
      -- still new for the purchase, so it is for its payment too.
      local pn = r.pn
      local same = pn and pn[1] == otag and pn or nil
      local fresh = {}
      if same then for j = 2, #same do fresh[same[j]] = true end end
      local newkeys = {}
      if not known or fresh['*'] then
        newkeys[1] = '*'
      elseif #probe > 0 then
        local hz = cc.hz.a or NEG
        for i = 1, #probe do
          -- Last seen before the retention horizon counts as never seen.
          local key = probe[i]
          local seen = attrs and attrs[key]
          if fresh[key] or not (seen and seen > t - ARET and seen > hz) then
            if kinds[i] == 'd' then new_d = 1 elseif kinds[i] == 'i' then new_i = 1 else new_k = 1 end
            newkeys[#newkeys + 1] = key
          end
        end
      end
      if pm ~= '' then probe[#probe + 1] = 'p:' .. pm end
      if write then
        -- A replayed order keeps what its first pass found (its keys are not new any more).
        if typ == 'O' and not same then r.pn = newkeys[1] and {otag, unpack(newkeys)} or nil end
        if #probe > 0 then
          for i = 1, #probe do map_put(cc, 'a', probe[i], t, false, ACAP) end
          attrs = r.a
          horizon(cc, 'a', t - ARET)
        end
        if not known or t < first then r.f = t end
        if typ == 'P' and st ~= '' then r.s = (st == 'F') and (cfs + 1) or 0 end
        -- Purchases feed the amount history, failed attempts do not.
        if typ == 'O' or st == 'S' then history_add(r, cents, otag) end
        cc.dirty = true
      end
      local _
      _, npur, nret, nrev = purchases(cc, t, 'o' .. ptag, write and (typ == 'O' or st == 'S'))
      if attrs then
        local lo = cc.hz.a or NEG
        if t - WL > lo then lo = t - WL end
        for key, seen in pairs(attrs) do
          if seen > lo then
            local c0 = byte(key, 1)
            if c0 == 100 then ddev = ddev + 1 elseif c0 == 112 then dpm = dpm + 1 end -- 'd', 'p'
          end
        end
      end
    end
  end
  applied_total = applied_total + applied
  if WANT then
    k = k + 1
    out[k] = pack(OUTFMT, c1, ca1, c24, ca24, i1, ia1, i24, ia24, d1, da1, d24, da24,
      ip_dc, dev_dc, dpm, ddev, tenure, hn, hmed, hmad, npur, nret, cfs, dfs, new_d, new_i, new_k, applied,
      nrev)
  end
end

-- ---------------------------------------------------------------------------------------------
-- write back what changed, pruned

for key, c in pairs(cache) do
  if c.dirty then
    local r, hz = c.rec, c.hz
    if r.v then r.v = velocity_compact(r.v, hz.v) end
    if r.vP then r.vP = velocity_compact(r.vP, hz.vP) end
    if r.vO then r.vO = velocity_compact(r.vO, hz.vO) end
    if r.c then r.c = map_compact(r.c, hz.c, VCAP) end
    if r.a then r.a = map_compact(r.a, hz.a, ACAP) end
    if r.r then r.r = map_compact(r.r, hz.r, RCAP) end
    call('SET', key, mp_pack(r), 'PX', c.ttl)
  end
end

if WANT then return table.concat(out) end
return applied_total
