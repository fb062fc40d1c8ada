// portamlp's fast CuPy training step: fused kernels for a whole mini-batch step, written to be
// captured into a CUDA graph (no cuBLAS, no cuRAND, no allocation).
//
// This file holds the kernels; the mathematics they call is generated from the registries
// before it (portamlp/fast/source.py): `real` (float or double), activate(z, act) and
// derivative(a, act) from the activations' kernel code, row_cost(...) from the costs',
// update(...) from the run's optimizer rule, and the HP_* slots of the hyper-parameters.
// Matrices are row-major: a weight matrix W is (n_out, n_in) and a batch of activations A is
// (rows, n).
//
// Where a step reads its rows and writes its cost comes from device memory, so one captured
// sequence of steps serves a whole epoch:
//   ctr[0]  first row (into the epoch's permutation) of the next step, advanced by `advance`;
//   ctr[1]  index of the next step within the epoch (its slot in `costs`, the step count);
//   hp[]    the epoch's hyper-parameters (doubles, written once per epoch).
// `rel` is the step's offset inside a captured sequence: step k of it reads rows
// ctr[0] + rel + r with rel = k * rows, and writes cost slot ctr[1] + k.

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

// The output layer's error delta and the step's summed raw cost (one block; rows spread over
// its threads, then a tree reduction in shared memory, so the sum is deterministic). Each row
// is the cost's row_cost: `out` holds what the cost's kernel_output left in the output layer
// (the hidden activation of z, or z itself), and the host multiplies the sum by the cost's
// value_scale once per epoch.
extern "C" __global__ void output_delta(const real* __restrict__ out,
                                        const long long* __restrict__ labels,
                                        const long long* __restrict__ perm,
                                        const long long* __restrict__ ctr, long long rel,
                                        int k, real* __restrict__ delta,
                                        real* __restrict__ costs, int rows, int n_out,
                                        int cost, int act, real tiny) {
    extern __shared__ unsigned char shared_bytes[];
    real* partial = (real*)shared_bytes;
    real acc = 0;
    for (int r = threadIdx.x; r < rows; r += blockDim.x) {
        int y = (int)labels[source_row(perm, ctr, rel, r)];
        acc += row_cost(cost, out + (long long)r * n_out, delta + (long long)r * n_out, y,
                        n_out, act, tiny);
    }
    partial[threadIdx.x] = acc;
    __syncthreads();
    for (int half = blockDim.x / 2; half > 0; half >>= 1) {
        if (threadIdx.x < half) partial[threadIdx.x] += partial[threadIdx.x + half];
        __syncthreads();
    }
    if (threadIdx.x == 0) costs[ctr[1] + k] = partial[0];
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

// The gradient of layer l's weights and biases from its error D (rows, n_out) and its input
// (rows, n_in), applied at once by the optimizer rule's update(): threads [0, n_out*n_in) own
// a weight, the next n_out a bias. With `gather`, the input rows are the data set's rows
// perm[ctr[0] + rel + r]. W1, W2, b1, b2 are the rule's state (a dummy where it has none).
extern "C" __global__ void update_layer(const real* __restrict__ D,
                                        const real* __restrict__ in, int gather,
                                        const long long* __restrict__ perm,
                                        const long long* __restrict__ ctr, long long rel, int k,
                                        real* __restrict__ W, real* __restrict__ b,
                                        real* __restrict__ W1, real* __restrict__ W2,
                                        real* __restrict__ b1, real* __restrict__ b2,
                                        int rows, int n_out, int n_in, real inv_rows,
                                        const double* __restrict__ hp) {
    long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long n_weights = (long long)n_out * n_in;
    if (t >= n_weights + n_out) return;
    long long step = (long long)hp[HP_STEP0] + ctr[1] + k + 1;
    real g = 0;
    if (t < n_weights) {
        int o = (int)(t / n_in), i = (int)(t % n_in);
        for (int r = 0; r < rows; ++r) {
            long long src = gather ? source_row(perm, ctr, rel, r) : r;
            g += D[(long long)r * n_out + o] * in[src * n_in + i];
        }
        update(W + t, W1 + t, W2 + t, g, inv_rows, hp, step, 1);
    } else {
        int o = (int)(t - n_weights);
        for (int r = 0; r < rows; ++r) g += D[(long long)r * n_out + o];
        update(b + o, b1 + o, b2 + o, g, inv_rows, hp, step, 0);
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

// One optimizer update of `count` parameters from their batch-summed gradients g; `states`
// says how many of s1, s2 the rule keeps per parameter (a dummy of one element otherwise).
extern "C" __global__ void apply_update(real* __restrict__ p, const real* __restrict__ g,
                                        real* __restrict__ s1, real* __restrict__ s2,
                                        long long count, real inv_rows,
                                        const double* __restrict__ hp,
                                        const long long* __restrict__ ctr, int k,
                                        int decay, int states) {
    long long step = (long long)hp[HP_STEP0] + ctr[1] + k + 1;
    for (long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x; t < count;
         t += (long long)gridDim.x * blockDim.x)
        update(p + t, states >= 1 ? s1 + t : s1, states >= 2 ? s2 + t : s2, g[t], inv_rows,
               hp, step, decay);
}
