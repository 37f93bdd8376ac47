#!lua name=train
--[[ train.lua - the server side of the model-training example (examples/train/README.md).
Loaded by bin/eddy-train with FUNCTION LOAD REPLACE. Runs next to the data through
MAPREDUCE: featurization (hashing trick) and one gradient-descent epoch per call.

Keys (every key of a review carries its id as a {hash tag}, so a review and its
features live in the same slot, the same partition and later the same node):
  r:{<id>}  the review: "<label>\t<text>"; label 0|1 (binary) or 1..5 (stars)
  f:{<id>}  its features: 1 byte class ('0' + y, y in 0..K-1), 1 byte split ('1' test,
            '0' train), then eddy.vec.encode_sparse(idx, vals) over dim = D + 1
  _train:{model}:w  the weights: K dense encodings (eddy.vec encode) of dim doubles,
            one after the other; K = 1 for logistic regression (2 classes), K = classes
            for softmax. A missing key means all zeros.
  _train:{model}:v  the momentum (velocity) vectors, same layout; only when momentum > 0.
  The model's keys share one slot, and sort before the f: and r: keys in it; the
  scans seek past them (see scans below).

Features of a review: its text lowercased, tokens = runs of letters, digits and "'".
A token's hash h is 32-bit FNV-1a of its bytes; the bigram (a, b) hashes to
(h(a) * 2654435761 XOR h(b)) mod 2^32. Each token and each bigram contributes the index
hash % D + 1 with value 1.0, in text order (token, then the bigram it ends); an index
that occurs again is listed again, which eddy.vec's sdot and saxpy add up, so it counts
as the number of occurrences. The bias is last: index D + 1, value 1.
Test split: a review is held out when fnv1a(id) % 100 < 20 (id = the text between the
braces), so the split is the same for every run, mode and node.

Functions (all arguments are strings, as MAPREDUCE passes them):
  MAPREDUCE train_featurize @sum <D> <classes>   -> {reviews, features written, skipped, nnz}
  MAPREDUCE train_grad @sum <D> <classes>        -> {ntrain, loss, correct, ntest, test loss,
                                               test correct, G_1, ..., G_K}
  MAPREDUCE train_grad train_step <D> <classes> <lr> <l2> <momentum>
      one epoch: train_step sums the partial gradients on the server, applies
        g = G/ntrain + l2 * w;  v = momentum * v + g;  w = w - lr * v
      to _train:{model}:w (and :v) and returns only the statistics, as strings:
        {ntrain, loss sum, correct, ntest, test loss sum, test correct, |g|}
      With lr = 0 it changes nothing (an evaluation pass).
  FCALL train_reset 0   deletes the weights and the momentum
The loss and accuracies of an epoch are those of the weights the epoch started with. ]]

local vec = eddy.vec
local byte, sub, find, lower, gmatch, format = string.byte, string.sub, string.find,
    string.lower, string.gmatch, string.format
local exp, log, tonumber, concat = math.exp, math.log, tonumber, table.concat

local WKEY, VKEY = '_train:{model}:w', '_train:{model}:v'
local MSLOT = eddy.slot(WKEY)
local BASIS, PRIME, M32 = 2166136261, 16777619, 0xffffffff

local function fnv1a(s)
    local h = BASIS
    for i = 1, #s do
        h = ((h ~ byte(s, i)) * PRIME) & M32
    end
    return h
end

-- Token hashes are memoized per thread (the vocabulary repeats); the cache is bounded.
local cache, ncache = {}, 0
local function token_hash(t)
    local h = cache[t]
    if h == nil then
        h = fnv1a(t)
        if ncache >= 200000 then
            cache, ncache = {}, 0
        end
        cache[t] = h
        ncache = ncache + 1
    end
    return h
end

-- The scans of this partition that visit its keys starting with prefix (two bytes,
-- such as 'f:'). They walk every key of the partition and test the first two bytes,
-- except in the slot of the model's keys, where they seek to the prefix: so they never
-- step onto the weights, whose old versions (megabytes rewritten every epoch) RocksDB
-- keeps until it compacts them. (A prefix scan of every slot seeks 8192 times per
-- partition; walking and testing two bytes measured cheaper here.)
local function scans(part, prefix)
    local lo, hi = part.slot_lo, part.slot_hi
    if MSLOT < lo or MSLOT > hi then
        return {{slot_lo = lo, slot_hi = hi}}
    end
    local r = {}
    if lo < MSLOT then r[#r + 1] = {slot_lo = lo, slot_hi = MSLOT - 1} end
    r[#r + 1] = {slot = MSLOT, prefix = prefix}
    if MSLOT < hi then r[#r + 1] = {slot_lo = MSLOT + 1, slot_hi = hi} end
    return r
end

local function is_test(id)
    return fnv1a(id) % 100 < 20
end

local function num_arg(args, i, name, default)
    local s = args[i]
    if s == nil or s == '' then
        if default ~= nil then return default end
        error('train: missing argument ' .. name, 0)
    end
    local v = tonumber(s)
    if v == nil then error('train: ' .. name .. ' must be a number, got ' .. s, 0) end
    return v
end

-- D and classes; K = number of weight vectors.
local function shape(args)
    local D = math.tointeger(num_arg(args, 1, 'D'))
    local classes = math.tointeger(num_arg(args, 2, 'classes'))
    if D == nil or D < 2 or D > 1 << 26 then error('train: D must be an integer in 2..2^26', 0) end
    if classes ~= 2 and classes ~= 5 then error('train: classes must be 2 or 5', 0) end
    return D, classes, classes == 2 and 1 or classes
end

-- ones_of(n): a shared array of n 1.0s, the values of a feature list (read-only).
local ones = {}
local function ones_of(n)
    local t = ones[n]
    if t == nil then
        t = {}
        for k = 1, n do t[k] = 1.0 end
        if n <= 4096 then ones[n] = t end
    end
    return t
end

-- The sparse features of one text: one index per token and per bigram, in text order
-- (a repeated index counts again: eddy.vec's sdot and saxpy add repeated entries up),
-- every value 1.0, then the bias.
local function features(text, D)
    local idx, n, prev = {}, 0, nil
    for t in gmatch(lower(text), "[%w']+") do
        local h = token_hash(t)
        n = n + 1
        idx[n] = h % D + 1
        if prev ~= nil then
            n = n + 1
            idx[n] = (((prev * 2654435761) ~ h) & M32) % D + 1
        end
        prev = h
    end
    n = n + 1
    idx[n] = D + 1
    return idx, ones_of(n)
end

-- Writes f:{id} for one review r:{id}; returns its number of features, or nil if the
-- key or the label is malformed.
local function featurize_one(key, v, D, classes)
    local tab = find(v, '\t', 1, true)
    local label = tab and tonumber(sub(v, 1, tab - 1))
    local y = label and math.tointeger(classes == 2 and label or label - 1)
    if y == nil or y < 0 or y >= classes or byte(key, 3) ~= 123 or byte(key, -1) ~= 125 then
        return nil
    end
    local idx, vals = features(sub(v, tab + 1), D)
    local head = string.char(48 + y, is_test(sub(key, 4, -2)) and 49 or 48)
    eddy.set('f:' .. sub(key, 3), head .. vec.encode_sparse(idx, vals))
    return #idx
end

-- Featurize this partition: f:{id} for every r:{id}. Commits every 2000 writes so a
-- bulk featurization never piles up in one transaction.
local function featurize(keys, args, part)
    local D, classes = shape(args)
    local n, written, skipped, nnz = 0, 0, 0, 0
    for _, opts in ipairs(scans(part, 'r:')) do
        for key, v in eddy.scan(opts) do
            if byte(key, 1) == 114 and byte(key, 2) == 58 then -- "r:"
                n = n + 1
                local f = featurize_one(key, v, D, classes)
                if f == nil then
                    skipped = skipped + 1
                else
                    nnz, written = nnz + f, written + 1
                    if written % 2000 == 0 then eddy.commit() end
                end
            end
        end
    end
    return {n, written, skipped, nnz}
end

-- The K weight vectors stored under key (zeros when it is missing).
local function load_vecs(key, dim, K)
    local s = eddy.get(key)
    local w = {}
    if s == nil then
        for k = 1, K do w[k] = vec.new(dim) end
        return w
    end
    local len = 8 + 8 * dim
    if #s ~= K * len then
        error(format('train: %s holds %d bytes, expected %d for %d x %d weights ' ..
                     '(FCALL train_reset 0, or train with the same D and classes)', key, #s,
                     K * len, K, dim), 0)
    end
    for k = 1, K do w[k] = vec.decode(sub(s, (k - 1) * len + 1, k * len)) end
    return w
end

local function store_vecs(key, w)
    local parts = {}
    for k = 1, #w do parts[k] = w[k]:encode() end
    eddy.set(key, concat(parts))
end

-- Cross-entropy of a logistic output for score z and label y, and p = sigmoid(z),
-- computed without overflow. The C driver (model.c) uses the same expressions.
local function logistic(z, y)
    local e, p, l
    if z >= 0 then
        e = exp(-z)
        p = 1 / (1 + e)
        l = y == 1 and log(1 + e) or z + log(1 + e)
    else
        e = exp(z)
        p = e / (1 + e)
        l = y == 1 and -z + log(1 + e) or log(1 + e)
    end
    return p, l
end

-- Adds one feature record to the partition's state st: the gradient sums st.G[k] (of
-- training records only), the loss sums and the counts.
local function grad_one(st, v)
    local y = byte(v, 1) - 48
    local test = byte(v, 2) == 49
    local idx, vals = vec.decode_sparse(sub(v, 3))
    local w, G, K = st.w, st.G, st.K
    local pred, l
    if K == 1 then
        local z = w[1]:sdot(idx, vals)
        local p
        p, l = logistic(z, y)
        pred = z > 0 and 1 or 0
        if not test then G[1]:saxpy(p - y, idx, vals) end
    else
        local s, e = st.s, st.e
        local m = -math.huge
        pred = 1
        for k = 1, K do
            s[k] = w[k]:sdot(idx, vals)
            if s[k] > m then m, pred = s[k], k end
        end
        local Z = 0.0
        for k = 1, K do
            e[k] = exp(s[k] - m)
            Z = Z + e[k]
        end
        l = log(Z) + m - s[y + 1]
        pred = pred - 1
        if not test then
            for k = 1, K do
                G[k]:saxpy(e[k] / Z - (k == y + 1 and 1 or 0), idx, vals)
            end
        end
    end
    local hit = pred == y and 1 or 0
    if test then
        st.nte, st.tloss, st.tcorr = st.nte + 1, st.tloss + l, st.tcorr + hit
    else
        st.ntr, st.loss, st.corr = st.ntr + 1, st.loss + l, st.corr + hit
    end
end

-- grad_one for logistic regression over one scan, inlined with the state in locals
-- (the same arithmetic as grad_one and logistic).
local function grad_logistic(st, opts)
    local w, G = st.w[1], st.G[1]
    local ntr, loss, corr, nte, tloss, tcorr = st.ntr, st.loss, st.corr, st.nte, st.tloss, st.tcorr
    local decode = vec.decode_sparse
    for key, v in eddy.scan(opts) do
        if byte(key, 1) == 102 and byte(key, 2) == 58 then -- "f:"
            local y = byte(v, 1) - 48
            local idx, vals = decode(sub(v, 3))
            local z = w:sdot(idx, vals)
            local e, p, l
            if z >= 0 then
                e = exp(-z)
                p = 1 / (1 + e)
                l = y == 1 and log(1 + e) or z + log(1 + e)
            else
                e = exp(z)
                p = e / (1 + e)
                l = y == 1 and -z + log(1 + e) or log(1 + e)
            end
            local hit = ((z > 0 and 1 or 0) == y) and 1 or 0
            if byte(v, 2) == 49 then -- held out
                nte, tloss, tcorr = nte + 1, tloss + l, tcorr + hit
            else
                ntr, loss, corr = ntr + 1, loss + l, corr + hit
                G:saxpy(p - y, idx, vals)
            end
        end
    end
    st.ntr, st.loss, st.corr, st.nte, st.tloss, st.tcorr = ntr, loss, corr, nte, tloss, tcorr
end

-- Gradient of this partition: the sum over its training reviews (not the mean), the
-- loss sums and the counts; held-out reviews only count towards the test figures.
local function grad(keys, args, part)
    local D, classes, K = shape(args)
    local dim = D + 1
    local st = {w = load_vecs(WKEY, dim, K), G = {}, K = K, s = {}, e = {},
                ntr = 0, loss = 0.0, corr = 0, nte = 0, tloss = 0.0, tcorr = 0}
    for k = 1, K do st.G[k] = vec.new(dim) end
    for _, opts in ipairs(scans(part, 'f:')) do
        if K == 1 then
            grad_logistic(st, opts)
        else
            for key, v in eddy.scan(opts) do
                if byte(key, 1) == 102 and byte(key, 2) == 58 then grad_one(st, v) end -- "f:"
            end
        end
    end
    local r = {st.ntr, st.loss, st.corr, st.nte, st.tloss, st.tcorr}
    for k = 1, K do r[6 + k] = st.G[k] end
    return r
end

-- Sum of the partial results, element by element, in partition order.
local function sum_partials(partials)
    local acc = nil
    for i = 1, partials.n do
        local p = partials[i]
        if acc == nil then
            acc = p
        else
            for j = 1, #p do
                if j <= 6 then acc[j] = acc[j] + p[j] else acc[j]:add(p[j]) end
            end
        end
    end
    return acc
end

-- Reduce of an epoch: sum, then one gradient step on train:w; returns statistics only.
local function step(keys, args, partials)
    local D, classes, K = shape(args)
    local lr = num_arg(args, 3, 'lr', 0)
    local l2 = num_arg(args, 4, 'l2', 0)
    local mu = num_arg(args, 5, 'momentum', 0)
    local acc = sum_partials(partials)
    local ntr = acc[1]
    local gnorm2 = 0.0
    if ntr > 0 and lr ~= 0 then
        local dim = D + 1
        local w = load_vecs(WKEY, dim, K)
        local v = mu ~= 0 and load_vecs(VKEY, dim, K) or nil
        for k = 1, K do
            local g = acc[6 + k]:scale(1 / ntr)
            if l2 ~= 0 then g:axpy(l2, w[k]) end
            local n = g:norm2()
            gnorm2 = gnorm2 + n * n
            if v then
                v[k]:scale(mu):add(g)
                w[k]:axpy(-lr, v[k])
            else
                w[k]:axpy(-lr, g)
            end
        end
        store_vecs(WKEY, w)
        if v then store_vecs(VKEY, v) end
    end
    local f = function(x) return format('%.17g', x) end
    return {acc[1], f(acc[2]), acc[3], acc[4], f(acc[5]), acc[6], f(math.sqrt(gnorm2))}
end

local function reset(keys, args)
    eddy.del(WKEY)
    eddy.del(VKEY)
    return {ok = 'OK'}
end

redis.register_function('train_featurize', featurize)
redis.register_function{function_name = 'train_grad', callback = grad, flags = {'no-writes'}}
redis.register_function('train_step', step)
redis.register_function('train_reset', reset)
