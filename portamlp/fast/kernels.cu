// portamlp's fast CuPy training step: fused kernels for a whole mini-batch step, written to be
// captured into a CUDA graph (no cuBLAS, no cuRAND, no allocation).
//
// `real` is float or double (defined before this source is compiled). Matrices are row-major:
// a weight matrix W is (n_out, n_in) and a batch of activations A is (rows, n).
//
// Where a step reads its rows and writes its loss comes from device memory, so one captured
// sequence of steps serves a whole epoch:
//   ctr[0]  first row (into the epoch's permutation) of the next step, advanced by `advance`;
//   ctr[1]  index of the next step within the epoch (its slot in `losses`, Adam's count);
//   hp[]    the epoch's hyper-parameters, see HP_* below (doubles, written once per epoch).
// `rel` is the step's offset inside a captured sequence: step k of it reads rows
// ctr[0] + rel + r with rel = k * rows, and writes loss slot ctr[1] + k.

#define ACT_SIGMOID 0
#define ACT_RELU 1
#define ACT_LEAKY_RELU 2
#define ACT_TANH 3
#define ACT_IDENTITY 4

#define OPT_SGD 0
#define OPT_MOMENTUM 1
#define OPT_NESTEROV 2
#define OPT_ADAM 3

#define HP_LR 0
#define HP_MOMENTUM 1
#define HP_WEIGHT_DECAY 2
#define HP_BETA1 3
#define HP_BETA2 4
#define HP_EPS 5
#define HP_ADAM_T0 6

__device__ __forceinline__ real activate(real z, int act) {
    switch (act) {
    case ACT_SIGMOID: return (real)0.5 * tanh((real)0.5 * z) + (real)0.5;
    case ACT_RELU: return z > (real)0 ? z : (real)0;
    case ACT_LEAKY_RELU: return z > (real)0 ? z : (real)0.01 * z;
    case ACT_TANH: return tanh(z);
    default: return z;
    }
}

// sigma'(z) from a = sigma(z): the same formulas as portamlp.activations.
__device__ __forceinline__ real derivative(real a, int act) {
    switch (act) {
    case ACT_SIGMOID: return a * ((real)1 - a);
    case ACT_RELU: return a > (real)0 ? (real)1 : (real)0;
    case ACT_LEAKY_RELU: return (real)0.99 * (a > (real)0 ? (real)1 : (real)0) + (real)0.01;
    case ACT_TANH: return (real)1 - a * a;
    default: return (real)1;
    }
}

__device__ __forceinline__ long long source_row(const long long* perm, const long long* ctr,
                                                long long rel, int r) {
    return perm[ctr[0] + rel + r];
}

// A[r, o] = act(sum_i In[r, i] W[o, i] + b[o]): one warp per output element, lanes over i.
// With `gather`, row r of In is row perm[ctr[0] + rel + r] of the data set X (In = X).
extern "C" __global__ void forward_layer(const real* __restrict__ in, int gather,
                                         const long long* __restrict__ perm,
                                         const long long* __restrict__ ctr, long long rel,
                                         const real* __restrict__ W, const real* __restrict__ b,
                                         real* __restrict__ out, int rows, int n_in, int n_out,
                                         int act) {
    long long warp = ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    int lane = threadIdx.x & 31;
    if (warp >= (long long)rows * n_out) return;
    int r = (int)(warp / n_out), o = (int)(warp % n_out);
    long long src = gather ? source_row(perm, ctr, rel, r) : r;
    const real* x = in + src * n_in;
    const real* w = W + (long long)o * n_in;
    real s = 0;
    for (int i = lane; i < n_in; i += 32) s += x[i] * w[i];
    for (int off = 16; off > 0; off >>= 1) s += __shfl_down_sync(0xffffffffu, s, off);
    if (lane == 0) out[(long long)r * n_out + o] = activate(s + b[o], act);
}

// The output layer's error delta and the step's summed cost (one block; rows spread over its
// threads, then a tree reduction in shared memory, so the sum is deterministic).
//   cost 0 (quadratic): a = out (the hidden activation), delta = (a - y) sigma'(a),
//                       loss slot += sum (a - y)^2          (times 1/2 on the host);
//   cost 1 (cross-entropy): out holds z; a = softmax(z), delta = a - y,
//                       loss slot += sum log max(a_y, tiny)  (times -1 on the host).
extern "C" __global__ void output_delta(const real* __restrict__ out,
                                        const long long* __restrict__ labels,
                                        const long long* __restrict__ perm,
                                        const long long* __restrict__ ctr, long long rel,
                                        int k, real* __restrict__ delta,
                                        real* __restrict__ losses, int rows, int n_out,
                                        int cost, int act, real tiny) {
    extern __shared__ unsigned char shared_bytes[];
    real* partial = (real*)shared_bytes;
    real acc = 0;
    for (int r = threadIdx.x; r < rows; r += blockDim.x) {
        int y = (int)labels[source_row(perm, ctr, rel, r)];
        const real* z = out + (long long)r * n_out;
        real* d = delta + (long long)r * n_out;
        if (cost == 0) {
            for (int j = 0; j < n_out; ++j) {
                real diff = z[j] - (j == y ? (real)1 : (real)0);
                acc += diff * diff;
                d[j] = diff * derivative(z[j], act);
            }
        } else {
            real m = z[0];
            for (int j = 1; j < n_out; ++j) m = z[j] > m ? z[j] : m;
            real total = 0;
            for (int j = 0; j < n_out; ++j) total += exp(z[j] - m);
            for (int j = 0; j < n_out; ++j) {
                real a = exp(z[j] - m) / total;
                d[j] = a - (j == y ? (real)1 : (real)0);
                if (j == y) acc += log(a > tiny ? a : tiny);
            }
        }
    }
    partial[threadIdx.x] = acc;
    __syncthreads();
    for (int half = blockDim.x / 2; half > 0; half >>= 1) {
        if (threadIdx.x < half) partial[threadIdx.x] += partial[threadIdx.x + half];
        __syncthreads();
    }
    if (threadIdx.x == 0) losses[ctr[1] + k] = partial[0];
}

// Dprev[r, i] = (sum_o D[r, o] W[o, i]) * sigma'(Aprev[r, i]): one thread per element.
extern "C" __global__ void backward_delta(const real* __restrict__ D,
                                          const real* __restrict__ W,
                                          const real* __restrict__ Aprev,
                                          real* __restrict__ Dprev, int rows, int n_out,
                                          int n_in, int act) {
    long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= (long long)rows * n_in) return;
    int r = (int)(t / n_in), i = (int)(t % n_in);
    const real* d = D + (long long)r * n_out;
    real s = 0;
    for (int o = 0; o < n_out; ++o) s += d[o] * W[(long long)o * n_in + i];
    Dprev[t] = s * derivative(Aprev[t], act);
}

// One optimizer update of parameter p with batch-summed gradient g (portamlp.optim's formulas).
__device__ __forceinline__ void update(real* p, real* s1, real* s2, real g, real inv_rows,
                                       const double* hp, long long t, int opt, int decay) {
    real lr = (real)hp[HP_LR];
    real wd = decay ? (real)hp[HP_WEIGHT_DECAY] : (real)0;
    if (opt == OPT_ADAM) {
        double b1 = hp[HP_BETA1], b2 = hp[HP_BETA2];
        double corr = sqrt(1.0 - pow(b2, (double)t));
        real step = (real)(hp[HP_LR] * corr / (1.0 - pow(b1, (double)t)));
        real eps_hat = (real)(hp[HP_EPS] * corr);
        g = g * inv_rows + wd * *p;
        real m = (real)b1 * *s1 + (real)(1.0 - b1) * g;
        real v = (real)b2 * *s2 + (real)(1.0 - b2) * (g * g);
        *s1 = m;
        *s2 = v;
        *p -= step * m / (sqrt(v) + eps_hat);
        return;
    }
    real change = (real)(hp[HP_LR] * (double)inv_rows) * g + lr * wd * *p;
    if (opt == OPT_SGD) {
        *p -= change;
        return;
    }
    real mu = (real)hp[HP_MOMENTUM];
    real v = mu * *s1 - change;
    *s1 = v;
    if (opt == OPT_NESTEROV) {
        *p += mu * v;
        *p -= change;
    } else {
        *p += v;
    }
}

// The gradient of layer l's weights and biases from its error D (rows, n_out) and its input
// (rows, n_in), applied at once: threads [0, n_out*n_in) own a weight, the next n_out a bias.
// With `gather`, the input rows are the data set's rows perm[ctr[0] + rel + r].
extern "C" __global__ void update_layer(const real* __restrict__ D,
                                        const real* __restrict__ in, int gather,
                                        const long long* __restrict__ perm,
                                        const long long* __restrict__ ctr, long long rel, int k,
                                        real* __restrict__ W, real* __restrict__ b,
                                        real* __restrict__ W1, real* __restrict__ W2,
                                        real* __restrict__ b1, real* __restrict__ b2,
                                        int rows, int n_out, int n_in, real inv_rows,
                                        const double* __restrict__ hp, int opt) {
    long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long n_weights = (long long)n_out * n_in;
    if (t >= n_weights + n_out) return;
    long long adam_t = (long long)hp[HP_ADAM_T0] + ctr[1] + k + 1;
    real g = 0;
    if (t < n_weights) {
        int o = (int)(t / n_in), i = (int)(t % n_in);
        for (int r = 0; r < rows; ++r) {
            long long src = gather ? source_row(perm, ctr, rel, r) : r;
            g += D[(long long)r * n_out + o] * in[src * n_in + i];
        }
        update(W + t, W1 ? W1 + t : 0, W2 ? W2 + t : 0, g, inv_rows, hp, adam_t, opt, 1);
    } else {
        int o = (int)(t - n_weights);
        for (int r = 0; r < rows; ++r) g += D[(long long)r * n_out + o];
        update(b + o, b1 ? b1 + o : 0, b2 ? b2 + o : 0, g, inv_rows, hp, adam_t, opt, 0);
    }
}

// After `steps` steps of `rows` rows each: move the next step's first row and index on.
extern "C" __global__ void advance(long long* ctr, long long rows, long long steps) {
    if (threadIdx.x == 0 && blockIdx.x == 0) {
        ctr[0] += rows;
        ctr[1] += steps;
    }
}

// -- the cuBLAS variant, for steps large enough that the products dominate: the products run
// through cuBLAS (CuPy's matmul), the elementwise work around them through these kernels.

// z = act(z + b), in place; z is (rows, n).
extern "C" __global__ void bias_activation(real* __restrict__ z, const real* __restrict__ b,
                                           long long count, int n, int act) {
    for (long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x; t < count;
         t += (long long)gridDim.x * blockDim.x)
        z[t] = activate(z[t] + b[t % n], act);
}

// d = d * sigma'(a), in place.
extern "C" __global__ void times_derivative(real* __restrict__ d, const real* __restrict__ a,
                                            long long count, int act) {
    for (long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x; t < count;
         t += (long long)gridDim.x * blockDim.x)
        d[t] *= derivative(a[t], act);
}

// One optimizer update of `count` parameters from their batch-summed gradients g.
extern "C" __global__ void apply_update(real* __restrict__ p, const real* __restrict__ g,
                                        real* __restrict__ s1, real* __restrict__ s2,
                                        long long count, real inv_rows,
                                        const double* __restrict__ hp,
                                        const long long* __restrict__ ctr, int k, int opt,
                                        int decay, int has_state2) {
    long long adam_t = (long long)hp[HP_ADAM_T0] + ctr[1] + k + 1;
    for (long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x; t < count;
         t += (long long)gridDim.x * blockDim.x)
        update(p + t, opt == OPT_SGD ? s1 : s1 + t, has_state2 ? s2 + t : s2, g[t], inv_rows,
               hp, adam_t, opt, decay);
}
