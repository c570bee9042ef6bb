-- PulseEcom enrichment state: apply a chunk of events IN ORDER and return their features.
--
-- KEYS[1]  tenant prefix "pulse:{tenant}:" (the braces are a Redis Cluster hash tag: every key of
--          a tenant lives in one slot, so building key names here stays cluster-safe).
-- ARGV     header (H fields) then ONE string per event, fields separated by \31 (unit separator):
--            1 eid  2 type (P payment / O order / R return)  3 status (F failed / S succeeded / '')
--            4 ts_ms  5 '(' .. ts_ms - long window  6 '(' .. ts_ms - short window  7 amount_cents
--            8 customer  9 ip  10 device  11 payment_method  12 country  13 order_id
--            14 '(' .. ts_ms - return window
--          One argument per event (not twelve): argument encoding dominated the client side.
--          Window bounds come precomputed as strings: number->string formatting inside
--          redis.call was the largest cost of the script.
-- Returns  one binary string, 29 little-endian doubles per event (struct.pack, again to avoid
--          number formatting), or the applied count when want_output is 0 (rebuild).
--
-- Writes happen before reads, so counts include the current event and later events of the same
-- chunk see the earlier ones. Every key gets a TTL on each write. Sorted sets are pruned by time
-- and capped by rank on about one event in eight (chosen by the event id, so the batch and the
-- single-event path prune identically); reads always use explicit score windows, so pruning
-- never changes a feature.
--
-- Purchases and returns per customer ('rr:' sorted set, scored by time, window = return window):
-- 'o<order>' one member per purchased order (an order event and its successful payment are ONE
-- purchase), 'r<order>' one per order with a return, 'x<event id>' one per return event. Members
-- are set elements, so replaying an event changes nothing; without an order id the event id
-- stands for the order.
local P = KEYS[1]
local n = tonumber(ARGV[1])
local WL = tonumber(ARGV[2])      -- long window (24 h) in ms
local WS = tonumber(ARGV[3])      -- short window (1 h) in ms
local ARET = tonumber(ARGV[4])    -- retention of customer attributes (devices, IPs, ...)
local PTTL = ARGV[5]              -- TTL of the customer profile (ms, string)
local VCAP = tonumber(ARGV[6])    -- max members read/kept per velocity set
local ACAP = tonumber(ARGV[7])    -- max members kept per customer attribute set
local HCAP = tonumber(ARGV[8])    -- amounts kept in the customer amount history
local WANT = ARGV[9] == '1'
local DTTL = ARGV[10]             -- TTL of the device failure streak (ms, string)
local RW_S = ARGV[11]             -- return window (ms, string): TTL of the purchases/returns set
local RCAP = tonumber(ARGV[12])   -- max members read/kept in the purchases/returns set
local H = 12
local VTTL = tostring(WL + WS)
local ARET_S = ARGV[4]
local OUTFMT = '<' .. string.rep('d', 29)
local VCAP_S, ACAP_S = ARGV[6], ARGV[7]

local call = redis.call
local tonum = tonumber
local byte = string.byte
local find = string.find
local sub = string.sub
local match = string.match
local pack = struct.pack
local out = {}
local k = 0
local applied_total = 0

local function fields(s)
  local f, pos, i = {}, 1, 0
  while true do
    local j = find(s, '\31', pos, true)
    i = i + 1
    if not j then f[i] = sub(s, pos); return f end
    f[i] = sub(s, pos, j - 1)
    pos = j + 1
  end
end

-- Add a member scored by time (only when new with nx), refresh the TTL and, on pruning events,
-- drop what fell out of the window (score <= lo) and keep the newest `cap`. Returns ZADD's count
-- (0: the member was already there).
local function zadd_windowed(key, ts, member, nx, ttl, lo, cap, prune)
  local added
  if nx then added = call('ZADD', key, 'NX', ts, member) else added = call('ZADD', key, ts, member) end
  call('PEXPIRE', key, ttl)
  if prune then
    call('ZREMRANGEBYSCORE', key, '-inf', lo)
    call('ZREMRANGEBYRANK', key, 0, -(cap + 1))
  end
  return added
end

-- Velocity of one entity: sorted set of 'e<cents>:<eid>' scored by time.
-- Returns added (0 when the event was already there), c1, a1, c24, a24.
local function velocity(key, ts, lo24, lo1, evm, write, prune)
  local added = 0
  if write then added = zadd_windowed(key, ts, evm, false, VTTL, lo24, VCAP, prune) end
  -- Newest first within (t - 24 h, t]: the first c1 of them are the last hour.
  local items = call('ZRANGE', key, ts, lo24, 'BYSCORE', 'REV', 'LIMIT', '0', VCAP_S)
  local c1 = call('ZCOUNT', key, lo1, ts)
  local a1, a24 = 0, 0
  for i = 1, #items do
    local cents = tonum(match(items[i], '^e(%d+)'))
    a24 = a24 + cents
    if i <= c1 then a1 = a1 + cents end
  end
  if c1 > #items then c1 = #items end
  return added, c1, a1, #items, a24
end

-- Distinct customers of an IP / device within (t - 24 h, +inf), last-seen scores.
local function customers(key, ts, lo24, cm, write, prune)
  if write then
    call('ZADD', key, 'GT', ts, cm)
    call('PEXPIRE', key, VTTL)
    if prune then call('ZREMRANGEBYSCORE', key, '-inf', lo24) end
  end
  return call('ZCOUNT', key, lo24, '+inf')
end

-- Purchases / returns of a customer within the return window: write (when asked), then count.
-- Returns added (0 when the member was already there), orders, returned orders, return events.
local function purchases(key, ts, lo, member, write, prune)
  local added = 0
  if write then added = zadd_windowed(key, ts, member, true, RW_S, lo, RCAP, prune) end
  local items = call('ZRANGE', key, ts, lo, 'BYSCORE', 'REV', 'LIMIT', '0', RCAP)
  local no, nr, nx = 0, 0, 0
  for i = 1, #items do
    local c0 = byte(items[i], 1)
    if c0 == 111 then no = no + 1 elseif c0 == 114 then nr = nr + 1 elseif c0 == 120 then nx = nx + 1 end
  end
  return added, no, nr, nx
end

local function median(sorted, m)
  if m % 2 == 1 then return sorted[(m + 1) / 2] end
  return 0.5 * (sorted[m / 2] + sorted[m / 2 + 1])
end

for e = 1, n do
  local a = fields(ARGV[H + e])
  local eid, typ, st, ts, lo24, lo1 = a[1], a[2], a[3], a[4], a[5], a[6]
  local t, cents = tonum(ts), tonum(a[7])
  local cust, ip, dev, pm, ctry = a[8], a[9], a[10], a[11], a[12]
  local okey, lor = a[13], a[14]
  if okey == '' then okey = 'e:' .. eid end
  -- Short tag of the purchase in the amount history: an order and its payment are one purchase.
  local otag = sub(redis.sha1hex(okey), 1, 8)
  local has_c, has_i, has_d = cust ~= '', ip ~= '', dev ~= ''
  local prune = byte(eid, -1) % 8 == 0

  local c1, ca1, c24, ca24 = 0, 0, 0, 0
  local i1, ia1, i24, ia24 = 0, 0, 0, 0
  local d1, da1, d24, da24 = 0, 0, 0, 0
  local ip_dc, dev_dc, dpm, ddev = 0, 0, 0, 0
  local tenure, hn, hmed, hmad, npur, nret, nrev, cfs, dfs = -1, 0, 0, 0, 0, 0, 0, 0, 0
  local new_d, new_i, new_k = 0, 0, 0
  local applied = 1

  if typ == 'R' then
    -- Returns only feed the purchases/returns set (and the customer's first-seen time).
    if has_c then
      local rk = P .. 'rr:' .. cust
      local added = call('ZADD', rk, 'NX', ts, 'x' .. eid)
      if added == 0 then applied = 0 end
      local _
      _, npur, nret, nrev = purchases(rk, ts, lor, 'r' .. okey, added == 1, prune)
      local pk = P .. 'cp:' .. cust
      local first = tonum(call('HGET', pk, 'f'))
      if added == 1 then
        if not first or t < first then call('HSET', pk, 'f', ts); first = t end
        call('PEXPIRE', pk, PTTL)
      end
      tenure = first and math.max(0, t - first) or 0
    end
  else
    local evm = 'e' .. a[7] .. ':' .. eid
    local write = true
    local vt = P .. 'v' .. typ
    if has_c then
      local added
      added, c1, ca1, c24, ca24 = velocity(vt .. ':c:' .. cust, ts, lo24, lo1, evm, true, prune)
      -- The customer set doubles as the replay guard: an event id already there was applied
      -- before (a re-run batch), so nothing else is mutated a second time.
      if added == 0 then write = false end
    end
    if has_i then
      local added
      added, i1, ia1, i24, ia24 = velocity(vt .. ':i:' .. ip, ts, lo24, lo1, evm, write, prune)
      if not has_c and write and added == 0 then write = false end
      if has_c then ip_dc = customers(vt .. ':ic:' .. ip, ts, lo24, cust, write, prune) end
    end
    if has_d then
      local added
      added, d1, da1, d24, da24 = velocity(vt .. ':d:' .. dev, ts, lo24, lo1, evm, write, prune)
      if not has_c and not has_i and write and added == 0 then write = false end
      if has_c then dev_dc = customers(vt .. ':dc:' .. dev, ts, lo24, cust, write, prune) end
      if typ == 'P' then
        local dk = P .. 'ds:' .. dev
        dfs = tonum(call('GET', dk)) or 0
        if write and st ~= '' then
          call('SET', dk, (st == 'F') and (dfs + 1) or 0, 'PX', DTTL)
        end
      end
    end
    if not write then applied = 0 end
    if has_c then
      local pk = P .. 'cp:' .. cust
      local f = call('HMGET', pk, 'f', 's', 'h')
      local first = tonum(f[1])
      local known = first ~= nil
      tenure = known and math.max(0, t - first) or 0
      cfs = tonum(f[2]) or 0
      local hist = f[3] or ''
      -- Amount history: median / MAD of log1p(amount) of past purchase events, newest first.
      -- Entries are 'cents/tag': the entry of this very purchase (the order of this payment) is kept
      -- but is not history for it.
      local vals, raw, m, r = {}, {}, 0, 0
      if hist ~= '' then
        for v in string.gmatch(hist, '[^,]+') do
          local c, tag = match(v, '^(%d+)/?(%w*)$')
          r = r + 1; raw[r] = v
          if tag ~= otag then m = m + 1; vals[m] = math.log(1 + tonum(c) / 100) end
        end
      end
      hn = m
      if m > 0 then
        table.sort(vals)
        hmed = median(vals, m)
        local dev_abs = {}
        for i = 1, m do dev_abs[i] = math.abs(vals[i] - hmed) end
        table.sort(dev_abs)
        hmad = median(dev_abs, m)
      end
      -- Customer attributes: last-seen time per device / IP / country / payment method.
      local ak = P .. 'ca:' .. cust
      local probe, kinds = {}, {}
      if has_d then probe[#probe + 1] = 'd:' .. dev; kinds[#kinds + 1] = 'd' end
      if has_i then probe[#probe + 1] = 'i:' .. ip; kinds[#kinds + 1] = 'i' end
      if ctry ~= '' then probe[#probe + 1] = 'k:' .. ctry; kinds[#kinds + 1] = 'k' end
      if known and #probe > 0 then
        local sc = call('ZMSCORE', ak, unpack(probe))
        for i = 1, #probe do
          -- Last seen before the retention horizon counts as never seen (pruning is lazy).
          if not (sc[i] and tonum(sc[i]) > t - ARET) then
            if kinds[i] == 'd' then new_d = 1 elseif kinds[i] == 'i' then new_i = 1 else new_k = 1 end
          end
        end
      end
      if pm ~= '' then probe[#probe + 1] = 'p:' .. pm end
      if write then
        if #probe > 0 then
          local args = {}
          for i = 1, #probe do args[2 * i - 1] = ts; args[2 * i] = probe[i] end
          call('ZADD', ak, 'GT', unpack(args))
          call('PEXPIRE', ak, ARET_S)
          if prune then
            call('ZREMRANGEBYSCORE', ak, '-inf', t - ARET)
            call('ZREMRANGEBYRANK', ak, 0, -(ACAP + 1))
          end
        end
        local hs = {}
        if not known or t < first then hs[#hs + 1] = 'f'; hs[#hs + 1] = ts end
        if typ == 'P' and st ~= '' then
          hs[#hs + 1] = 's'; hs[#hs + 1] = (st == 'F') and (cfs + 1) or 0
        end
        -- Purchases feed the amount history, failed attempts do not.
        if typ == 'O' or st == 'S' then
          local keep = {a[7] .. '/' .. otag}
          for i = 1, math.min(r, HCAP - 1) do keep[i + 1] = raw[i] end
          hs[#hs + 1] = 'h'; hs[#hs + 1] = table.concat(keep, ',')
        end
        if #hs > 0 then call('HSET', pk, unpack(hs)) end
        call('PEXPIRE', pk, PTTL)
      end
      local _
      _, npur, nret, nrev = purchases(P .. 'rr:' .. cust, ts, lor, 'o' .. okey,
        write and (typ == 'O' or st == 'S'), prune)
      local items = call('ZRANGE', ak, '+inf', lo24, 'BYSCORE', 'REV', 'LIMIT', '0', ACAP_S)
      for i = 1, #items do
        local c0 = byte(items[i], 1)
        if c0 == 100 then ddev = ddev + 1 elseif c0 == 112 then dpm = dpm + 1 end -- 'd', 'p'
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
if WANT then return table.concat(out) end
return applied_total
