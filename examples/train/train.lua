#!lua name=train
--[[ train.lua - the server side of the model-training example (examples/train/README.md).
Loaded by bin/eddy-train with FUNCTION LOAD REPLACE. Runs next to the data through
MAPREDUCE: featurization (hashing trick) and one gradient-descent epoch per call.

Keys (every key of a review carries its id as a {hash tag}, so a review and its
features live in the same slot, the same partition and later the same node):
  r:{<id>}     the review: "<label>\t<text>"; label 0|1 (binary) or 1..5 (stars)
  f:{<id>}     its features: 1 byte class ('0' + y, y in 0..K-1), 1 byte split ('1' test,
               '0' train), then eddy.vec.encode_sparse(idx, vals) over dim = D + 1
  train:w      the weights: K dense encodings (eddy.vec encode) of dim doubles, one after
               the other; K = 1 for logistic regression (2 classes), K = classes for
               softmax. A missing key means all zeros.
  train:v      the momentum (velocity) vectors, same layout; only when momentum > 0.

Features of a review: its text lowercased, tokens = runs of letters, digits and "'".
A token's hash is 32-bit FNV-1a of its bytes; a bigram's is FNV-1a over the 4
little-endian bytes of the first token's hash, then the 4 of the second's. Index =
hash % D + 1, value = the count of that index in the review (collisions add up); the
bias is index D + 1 with value 1. Indices are sorted ascending.
Test split: a review is held out when fnv1a(id) % 100 < 20 (id = the text between the
braces), so the split is the same for every run, mode and node.

Functions (all arguments are strings, as MAPREDUCE passes them):
  MAPREDUCE train_featurize @sum <D> <classes>   -> {reviews, features written, skipped, nnz}
  MAPREDUCE train_grad @sum <D> <classes>        -> {ntrain, loss, correct, ntest, test loss,
                                               test correct, G_1, ..., G_K}
  MAPREDUCE train_grad train_step <D> <classes> <lr> <l2> <momentum>
      one epoch: train_step sums the partial gradients on the server, applies
        g = G/ntrain + l2 * w;  v = momentum * v + g;  w = w - lr * v
      to train:w (and train:v) and returns only the statistics, as strings:
        {ntrain, loss sum, correct, ntest, test loss sum, test correct, |g|}
      With lr = 0 it changes nothing (an evaluation pass).
  FCALL train_reset 0                                   deletes train:w and train:v
The loss and accuracies of an epoch are those of the weights the epoch started with. ]]

local vec = eddy.vec
local byte, sub, find, lower, gmatch, format = string.byte, string.sub, string.find,
    string.lower, string.gmatch, string.format
local exp, log, tonumber, sort, concat = math.exp, math.log, tonumber, table.sort,
    table.concat

local WKEY, VKEY = 'train:w', 'train:v'
local BASIS, PRIME, M32 = 2166136261, 16777619, 0xffffffff

local function fnv1a(s)
    local h = BASIS
    for i = 1, #s do
        h = ((h ~ byte(s, i)) * PRIME) & M32
    end
    return h
end

-- FNV-1a over the 4 little-endian bytes of x, continuing from h.
local function mix(h, x)
    h = ((h ~ (x & 255)) * PRIME) & M32
    h = ((h ~ ((x >> 8) & 255)) * PRIME) & M32
    h = ((h ~ ((x >> 16) & 255)) * PRIME) & M32
    return ((h ~ (x >> 24)) * PRIME) & M32
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

-- The sparse features of one text: sorted indices and their counts, bias last.
local function features(text, D)
    local counts = {}
    local prev = nil
    for t in gmatch(lower(text), "[%w']+") do
        local h = token_hash(t)
        local i = h % D + 1
        counts[i] = (counts[i] or 0) + 1
        if prev ~= nil then
            local j = mix(mix(BASIS, prev), h) % D + 1
            counts[j] = (counts[j] or 0) + 1
        end
        prev = h
    end
    local idx = {}
    for i in pairs(counts) do idx[#idx + 1] = i end
    sort(idx)
    local vals = {}
    for k = 1, #idx do vals[k] = counts[idx[k]] + 0.0 end
    idx[#idx + 1] = D + 1
    vals[#vals + 1] = 1.0
    return idx, vals
end

-- Featurize this partition: f:{id} for every r:{id}. Commits every 2000 writes so a
-- bulk featurization never piles up in one transaction.
local function featurize(keys, args, part)
    local D, classes = shape(args)
    local n, written, skipped, nnz = 0, 0, 0, 0
    for key, v in eddy.scan{prefix = 'r:'} do
        n = n + 1
        local id = sub(key, 4, -2)
        local tab = find(v, '\t', 1, true)
        local label = tab and tonumber(sub(v, 1, tab - 1))
        local y = label and (classes == 2 and label or label - 1)
        if y == nil or y < 0 or y >= classes or y ~= math.floor(y) or
                byte(key, 3) ~= 123 or byte(key, -1) ~= 125 then
            skipped = skipped + 1
        else
            local idx, vals = features(sub(v, tab + 1), D)
            nnz = nnz + #idx
            local head = string.char(48 + math.tointeger(y), is_test(id) and 49 or 48)
            eddy.set('f:' .. sub(key, 3), head .. vec.encode_sparse(idx, vals))
            written = written + 1
            if written % 2000 == 0 then eddy.commit() end
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

-- Gradient of this partition: the sum over its training reviews (not the mean), the
-- loss sum and the counts; held-out reviews only count towards the test figures.
local function grad(keys, args, part)
    local D, classes, K = shape(args)
    local dim = D + 1
    local w = load_vecs(WKEY, dim, K)
    local G = {}
    for k = 1, K do G[k] = vec.new(dim) end
    local ntr, loss, corr, nte, tloss, tcorr = 0, 0.0, 0, 0, 0.0, 0
    local s, e = {}, {}
    for _, v in eddy.scan{prefix = 'f:'} do
        local y = byte(v, 1) - 48
        local test = byte(v, 2) == 49
        local idx, vals = vec.decode_sparse(sub(v, 3))
        local pred, l
        if K == 1 then
            local z = w[1]:sdot(idx, vals)
            local p
            p, l = logistic(z, y)
            pred = z > 0 and 1 or 0
            if not test then G[1]:saxpy(p - y, idx, vals) end
        else
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
        if test then
            nte, tloss = nte + 1, tloss + l
            if pred == y then tcorr = tcorr + 1 end
        else
            ntr, loss = ntr + 1, loss + l
            if pred == y then corr = corr + 1 end
        end
    end
    local r = {ntr, loss, corr, nte, tloss, tcorr}
    for k = 1, K do r[6 + k] = G[k] end
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
