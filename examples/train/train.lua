#!lua name=train
--[[ train.lua - the server side of the model-training example (examples/train/README.md).
Loaded by bin/eddy-train with FUNCTION LOAD REPLACE. Runs next to the data through
MAPREDUCE: featurization (hashing trick) and one gradient-descent epoch per call.

Keys (every key of a review carries its id as a {hash tag}, so a review and its
features live in the same slot, the same partition and later the same node):
  r:{<id>}  the review: "<label>\t<text>"; label 0|1 (binary) or 1..5 (stars)
  fb:{<id>}:<n>  a feature block: the features of up to <block> reviews of one slot
            (<id> is the first review's, so the block lives in their slot), as
            "TRB1" | uint32 rows | rows bytes class (0..K-1) | rows bytes split (1 held
            out, 0 train) | eddy.vec.encode_csr(D + 1, ...): row r = review r's features.
            A review's row does not depend on which block holds it.
  _train:{model}:w  the weights: K dense encodings (eddy.vec encode) of dim doubles,
            one after the other; K = 1 for logistic regression (2 classes), K = classes
            for softmax. A missing key means all zeros.
  _train:{model}:v  the momentum (velocity) vectors, same layout; only when momentum > 0.
  The model's keys share one slot and sort before the fb: and r: keys in it; the
  prefix scans never step on them.

Features of a review: its text lowercased, tokens = runs of letters, digits and "'".
A token's hash h is 32-bit FNV-1a of its bytes; the bigram (a, b) hashes to
(h(a) * 2654435761 XOR h(b)) mod 2^32. Each token and each bigram contributes the index
hash % D + 1 with value 1.0, in text order (token, then the bigram it ends); an index
that occurs again is listed again, which eddy.vec's products add up, so it counts as
the number of occurrences. The bias is last: index D + 1, value 1.
Test split: a review is held out when fnv1a(id) % 100 < 20 (id = the text between the
braces), so the split is the same for every run, mode and node.

Functions (all arguments are strings, as MAPREDUCE passes them):
  MAPREDUCE train_featurize @sum <D> <classes> [block]
      -> {reviews, featurized, skipped, nnz, blocks}; replaces every block of the
         partition's slots (block: rows per block at most, default 1000)
  MAPREDUCE train_grad train_sum <D> <classes>   -> {ntrain, loss, correct, ntest, test loss,
                                               test correct, G_1, ..., G_K}
      (a map's own result carries each G_k as its non-zeros: idx, vals vectors)
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
local tonumber, concat = tonumber, table.concat

local WKEY, VKEY = '_train:{model}:w', '_train:{model}:v'
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

-- The sparse features of one text: one index per token and per bigram, in text order
-- (a repeated index counts again: eddy.vec's products add repeated entries up), then
-- the bias. Every value is 1.0 (encode_csr's default).
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
    return idx
end

-- The class (0..K-1) and the features of review r:{id} with value v; nil if the key or
-- the label is malformed.
local function featurize_one(key, v, D, classes)
    local tab = find(v, '\t', 1, true)
    local label = tab and tonumber(sub(v, 1, tab - 1))
    local y = label and math.tointeger(classes == 2 and label or label - 1)
    if y == nil or y < 0 or y >= classes or #key < 5 or byte(key, 3) ~= 123 or
       byte(key, -1) ~= 125 then
        return nil
    end
    return y, features(sub(v, tab + 1), D)
end

local BLOCK_MAGIC = 'TRB1'

-- Featurize this partition: in every slot, the reviews r:{id} in key order become
-- blocks fb:{<first id>}:<n> of at most `block` rows; the slot's old blocks go first.
-- Commits after every block, so a bulk featurization never piles up in one transaction.
local function featurize(keys, args, part)
    local D, classes = shape(args)
    local block = math.tointeger(num_arg(args, 3, 'block', 1000))
    if block == nil or block < 1 or block > 100000 then
        error('train: block must be an integer in 1..100000', 0)
    end
    local old = {}
    for key in eddy.scan{prefix = 'fb:'} do old[#old + 1] = key end
    for i = 1, #old do
        eddy.del(old[i])
        if i % 2000 == 0 then eddy.commit() end
    end
    local n, done, skipped, nnz, blocks = 0, 0, 0, 0, 0
    local rows, ys, tests, first, nb, slot = {}, {}, {}, nil, 0, -1
    local function flush()
        if #rows == 0 then return end
        local X = vec.encode_csr(D + 1, rows)
        eddy.set(format('fb:{%s}:%d', first, nb),
                 string.pack('<c4I4', BLOCK_MAGIC, #rows) .. concat(ys) .. concat(tests) .. X)
        eddy.commit()
        nb, blocks = nb + 1, blocks + 1
        rows, ys, tests, first = {}, {}, {}, nil
    end
    for key, v in eddy.scan{prefix = 'r:'} do
        local s = eddy.slot(key)
        if s ~= slot then
            flush()
            slot, nb = s, 0
        end
        n = n + 1
        local y, idx = featurize_one(key, v, D, classes)
        if y == nil then
            skipped = skipped + 1
        else
            local id = sub(key, 4, -2)
            if first == nil then first = id end
            local r = #rows + 1
            rows[r], ys[r], tests[r] = idx, string.char(y), is_test(id) and '\1' or '\0'
            nnz, done = nnz + #idx, done + 1
            if r == block then flush() end
        end
    end
    flush()
    return {n, done, skipped, nnz, blocks}
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

-- Gradient of this partition: the sum over its training reviews (not the mean), the
-- loss sums and the counts; held-out reviews only count towards the test figures.
-- Each block is one call of eddy.vec's regression kernel, in C.
local function grad(keys, args, part)
    local D, classes, K = shape(args)
    local dim = D + 1
    local W, G = load_vecs(WKEY, dim, K), {}
    for k = 1, K do G[k] = vec.new(dim) end
    local Wa, Ga = W, G
    if K == 1 then Wa, Ga = W[1], G[1] end
    local ntr, loss, corr, nte, tloss, tcorr = 0, 0.0, 0, 0, 0.0, 0
    for key, v in eddy.scan{prefix = 'fb:'} do
        if sub(v, 1, 4) ~= BLOCK_MAGIC then
            error('train: ' .. key .. ' is not a feature block (featurize again)', 0)
        end
        local n = string.unpack('<I4', v, 5)
        local X = vec.decode_csr(v, 9 + 2 * n)
        if X:cols() ~= dim then
            error(format('train: %s has %d columns, expected %d (featurize again with the same D)',
                         key, X:cols(), dim), 0)
        end
        local a, b, c, d, e, f = X:glm_grad(Wa, Ga, sub(v, 9, 8 + n), sub(v, 9 + n, 8 + 2 * n))
        ntr, loss, corr = ntr + a, loss + b, corr + c
        nte, tloss, tcorr = nte + d, tloss + e, tcorr + f
    end
    -- The gradient travels as its non-zeros: a partition touches few of the D + 1
    -- weights when it holds few reviews, and the reduce adds pairs, not dense vectors.
    local r = {ntr, loss, corr, nte, tloss, tcorr}
    for k = 1, K do r[5 + 2 * k], r[6 + 2 * k] = G[k]:nonzeros() end
    return r
end

-- Sum of the partial results in partition order: the statistics, and the K gradients
-- (dense vectors of dim elements) from the partitions' non-zeros.
local function sum_partials(partials, dim, K)
    local acc = {0, 0.0, 0, 0, 0.0, 0}
    for k = 1, K do acc[6 + k] = vec.new(dim) end
    for i = 1, partials.n do
        local p = partials[i]
        for j = 1, 6 do acc[j] = acc[j] + p[j] end
        for k = 1, K do acc[6 + k]:saxpy(1, p[5 + 2 * k], p[6 + 2 * k]) end
    end
    return acc
end

-- A reduce that only adds up: {ntrain, loss, correct, ntest, test loss, test correct,
-- G_1, ..., G_K} with dense gradient sums (what the tests compare with their own).
local function sum(keys, args, partials)
    local D, classes, K = shape(args)
    return sum_partials(partials, D + 1, K)
end

-- Reduce of an epoch: sum, then one gradient step on train:w; returns statistics only.
local function step(keys, args, partials)
    local D, classes, K = shape(args)
    local lr = num_arg(args, 3, 'lr', 0)
    local l2 = num_arg(args, 4, 'l2', 0)
    local mu = num_arg(args, 5, 'momentum', 0)
    local acc = sum_partials(partials, D + 1, K)
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
redis.register_function('train_sum', sum)
redis.register_function('train_reset', reset)
