// fastlstm's CPU LSTM behind the small interface of lstm_onednn.h.
//
// Inference runs oneDNN's LSTM inference primitive. Its descriptors and
// primitives are created once per shape and kept: creating them costs far
// more than running a small LSTM. Weights come in Keras's plain layout and
// are reordered, per call, into whatever layout the primitive prefers.
// Scratchpads are kept per thread (see Buffer), so one primitive can run on
// several threads at once.
//
// Training runs fastlstm's own recurrence on oneDNN's GEMM (dnnl_sgemm):
// the input products of all steps as one product, one product with the
// recurrent kernel per step, the gates computed here, and in the backward
// pass the weight gradients as one product each over all steps. Measured
// against oneDNN's training primitives (their reference implementation on
// x86, a GEMM per step for the weight gradients too), it is faster and its
// workspace is a quarter of theirs: each step's activated gates and cell
// state, 5 * units floats a row.
//
// With bfloat16 products (Dims::bf16, mixed_bfloat16 on a CPU with AMX or
// AVX512-BF16), every pass runs that recurrence, its products on oneDNN's
// bfloat16 matmul: factors rounded to bfloat16 (the kernels once per call,
// the rest per product or once per backward pass), sums in float32; gates,
// states and the workspace stay float32.

#include "lstm_onednn.h"

#include <omp.h>
#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <cstring>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "oneapi/dnnl/dnnl.hpp"

namespace fastlstm {
namespace {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

// Inference runs in chunks of steps whose scratchpad fits in this.
constexpr size_t kChunkScratch = size_t(16) << 20;
// Ragged inference makes the input products of this many bytes at a time,
// so that they are still in cache when each step adds to them. Measured on
// an AMD EPYC (1 MB L2 a core), 30% padding, 2 threads: padded over
// unpadded time, S 0.81 and M 0.84 at 256 KB, 0.91 and 0.97 at 2 MB, 0.89
// and 1.00 with each row's input products made on their own, all steps at
// once.
constexpr size_t kRaggedChunk = size_t(256) << 10;
// Buffers up to this size are kept per thread between calls.
constexpr size_t kKeptBuffer = size_t(128) << 20;

dnnl::engine& cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

memory::desc weights_desc(int64_t rows, int64_t units, tag layout) {
  return memory::desc({1, 1, rows, 4, units}, dt::f32, layout);
}

memory::desc state_desc(const Dims& d) {
  return memory::desc({1, 1, d.batch, d.units}, dt::f32, tag::ldnc);
}

memory::desc bias_desc(const Dims& d) {
  return memory::desc({1, 1, 4, d.units}, dt::f32, tag::ldgo);
}

// `steps` steps of a batch-major (batch, total_steps, width) tensor, as
// oneDNN's (time, batch, width): strided where total_steps > steps.
memory::desc sequence_desc(const Dims& d, int64_t steps, int64_t total_steps,
                           int64_t width) {
  return memory::desc({steps, d.batch, width}, dt::f32,
                      memory::dims{width, total_steps * width, 1});
}

dnnl::primitive_attr user_scratchpad() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

// A reorder from `from` to `to`, or nothing where the layouts agree.
struct Reorder {
  memory::desc from, to;
  std::unique_ptr<dnnl::reorder> op;

  Reorder(const memory::desc& from_desc, const memory::desc& to_desc)
      : from(from_desc), to(to_desc) {
    if (from != to) {
      op.reset(new dnnl::reorder(
          dnnl::reorder::primitive_desc(cpu_engine(), from, cpu_engine(), to)));
    }
  }
};

// One inference primitive: `steps` steps of inputs laid out as `x`, outputs
// as `y`.
struct Forward {
  memory::desc x, y;
  dnnl::lstm_forward::primitive_desc pd;
  dnnl::lstm_forward op;
  Reorder kernel, recurrent_kernel;

  Forward(const Dims& d, const memory::desc& x_desc, const memory::desc& y_desc)
      : x(x_desc),
        y(y_desc),
        pd(cpu_engine(), dnnl::prop_kind::forward_inference,
           dnnl::rnn_direction::unidirectional_left2right,
           x, state_desc(d), state_desc(d),
           weights_desc(d.features, d.units, tag::any),
           weights_desc(d.units, d.units, tag::any), bias_desc(d), y,
           state_desc(d), state_desc(d), user_scratchpad()),
        op(pd),
        kernel(weights_desc(d.features, d.units, tag::ldigo),
               pd.weights_layer_desc()),
        recurrent_kernel(weights_desc(d.units, d.units, tag::ldigo),
                         pd.weights_iter_desc()) {}
};

// (batch, steps, features, units, total steps of x, of y or 0)
using Key = std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t>;

// The primitives of the kPrimitivesKept shapes used last (least recently
// used first out): a process that meets many shapes (a sweep of batch sizes,
// say) keeps a bounded number. Each holds a few KB, plus oneDNN's code.
constexpr size_t kPrimitivesKept = 64;

class PrimitiveCache {
 public:
  // The primitive for `key`, made by `make` where it is not kept.
  std::shared_ptr<Forward> get(const Key& key,
                               const std::function<Forward*()>& make) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto found = index_.find(key);
    if (found != index_.end()) {
      order_.splice(order_.begin(), order_, found->second);
      return found->second->second;
    }
    order_.emplace_front(key, std::shared_ptr<Forward>(make()));
    index_[key] = order_.begin();
    if (order_.size() > kPrimitivesKept) {
      index_.erase(order_.back().first);
      order_.pop_back();  // a call still running it holds its own reference
    }
    return order_.front().second;
  }

  size_t size() {
    std::lock_guard<std::mutex> lock(mutex_);
    return order_.size();
  }

 private:
  std::mutex mutex_;
  std::list<std::pair<Key, std::shared_ptr<Forward>>> order_;
  std::map<Key, decltype(order_)::iterator> index_;
};

PrimitiveCache& forward_cache() {
  static PrimitiveCache* cache = new PrimitiveCache;  // never destroyed
  return *cache;
}

// A chunk of `steps` steps of an inference pass over `total` steps; its
// outputs go to a (batch, total, units) tensor or, with `own_y`, to a
// buffer of the chunk's own.
std::shared_ptr<Forward> get_inference(const Dims& d, int64_t steps,
                                       int64_t total, bool own_y) {
  int64_t y_total = own_y ? steps : total;
  return forward_cache().get(
      Key(d.batch, steps, d.features, d.units, total, own_y ? 0 : total),
      [&] {
        return new Forward(d, sequence_desc(d, steps, total, d.features),
                           sequence_desc(d, steps, y_total, d.units));
      });
}

memory wrap(const memory::desc& desc, const void* data) {
  return memory(desc, cpu_engine(), const_cast<void*>(data));
}

// Memory for one call. Up to kKeptBuffer bytes it is kept per thread and
// slot and reused: oneDNN's inference scratchpad is tens of MB, and fresh
// pages would cost a page fault each on every call.
class Buffer {
 public:
  enum Slot { kScratch, kOutputs, kSlots };

  Buffer(Slot slot, size_t bytes) {
    if (bytes > kKeptBuffer) {
      own_.reset(new char[bytes]);
      data_ = own_.get();
    } else {
      static thread_local std::vector<char> kept[kSlots];
      if (kept[slot].size() < bytes) kept[slot].resize(bytes);
      data_ = kept[slot].data();
    }
  }
  void* data() const { return data_; }

 private:
  std::unique_ptr<char[]> own_;
  void* data_;
};

// `data` in the layout `r.to`: the user's buffer itself, or a reordered copy
// kept alive in `keep`.
memory to_primitive_layout(const Reorder& r, const void* data,
                           dnnl::stream& stream, std::vector<memory>& keep) {
  memory user = wrap(r.from, data);
  if (!r.op) return user;
  memory converted(r.to, cpu_engine());
  r.op->execute(stream, user, converted);
  keep.push_back(converted);
  return converted;
}

// How each part of a call runs on its thread, for as long as it runs.
//
// oneDNN on one thread: fastlstm parallelises over rows itself (see
// Workers), never inside oneDNN, whose per-step OpenMP barriers stall
// whenever the framework's own threads hold a core.
//
// Denormal floats flushed to zero, as TensorFlow and XLA run their own
// threads: gradients that fade over many steps reach the denormal range,
// where x86 arithmetic is many times slower (measured with torch.nn.LSTM,
// which keeps them: 1.6 s a training step at 32 rows, 2000 steps, 128
// units, 0.4 s with them flushed).
//
// Both are restored when the part ends: part 0 runs on the caller's thread,
// whose OpenMP setting is the framework's own (PyTorch reads its intra-op
// thread count from it).
class PartThread {
 public:
  PartThread() : saved_threads_(omp_get_max_threads()) {
    omp_set_num_threads(1);
#if defined(__x86_64__) || defined(__i386__)
    saved_csr_ = _mm_getcsr();
    _mm_setcsr(saved_csr_ | 0x8040);  // flush to zero, denormals are zero
#endif
  }
  ~PartThread() {
#if defined(__x86_64__) || defined(__i386__)
    _mm_setcsr(saved_csr_);
#endif
    omp_set_num_threads(saved_threads_);
  }

 private:
  int saved_threads_;
#if defined(__x86_64__) || defined(__i386__)
  unsigned saved_csr_ = 0;
#endif
};

// Steps per inference chunk: all of them, unless the scratchpad would pass
// kChunkScratch; it grows with the number of steps.
int64_t chunk_steps(const Dims& d, bool own_y) {
  size_t all = get_inference(d, d.steps, d.steps, own_y)->pd.scratchpad_desc().get_size();
  if (all <= kChunkScratch) return d.steps;
  size_t per_step = all / static_cast<size_t>(d.steps) + 1;
  return std::max<int64_t>(1, static_cast<int64_t>(kChunkScratch / per_step));
}

// Inference on oneDNN's primitive, every step of every row.
std::string inference_part(const Dims& d, const float* x, const float* h0,
                           const float* c0, const Weights& w, float* y,
                           float* h_last, float* c_last) {
  try {
    PartThread part;
    const bool own_y = (y == nullptr);
    const int64_t chunk = chunk_steps(d, own_y);
    dnnl::stream stream(cpu_engine());
    std::vector<memory> keep;
    // Weights in the primitives' layout, once for all chunks (every chunk's
    // primitive prefers the same layout for the same weights).
    auto first = get_inference(d, std::min(chunk, d.steps), d.steps, own_y);
    memory kernel = to_primitive_layout(first->kernel, w.kernel, stream, keep);
    memory recurrent = to_primitive_layout(first->recurrent_kernel,
                                           w.recurrent_kernel, stream, keep);
    // States pass from chunk to chunk through two pairs of buffers in turn.
    std::vector<float> h_states[2], c_states[2];
    for (int i = 0; i < 2; ++i) {
      if (chunk < d.steps) {
        h_states[i].resize(d.batch * d.units);
        c_states[i].resize(d.batch * d.units);
      }
    }
    const float* h_in = h0;
    const float* c_in = c0;
    for (int64_t start = 0, k = 0; start < d.steps; start += chunk, ++k) {
      const int64_t steps = std::min(chunk, d.steps - start);
      const bool last = start + steps == d.steps;
      auto fwd = get_inference(d, steps, d.steps, own_y);
      if (fwd->kernel.to != first->kernel.to ||
          fwd->recurrent_kernel.to != first->recurrent_kernel.to) {
        kernel = to_primitive_layout(fwd->kernel, w.kernel, stream, keep);
        recurrent = to_primitive_layout(fwd->recurrent_kernel,
                                        w.recurrent_kernel, stream, keep);
      }
      Buffer outputs(Buffer::kOutputs, own_y ? fwd->y.get_size() : 0);
      float* y_chunk = own_y ? static_cast<float*>(outputs.data())
                             : y + start * d.units;
      float* h_out = last ? h_last : h_states[k % 2].data();
      float* c_out = last ? c_last : c_states[k % 2].data();
      Buffer scratch(Buffer::kScratch, fwd->pd.scratchpad_desc().get_size());
      fwd->op.execute(
          stream,
          {
              {DNNL_ARG_SRC_LAYER, wrap(fwd->x, x + start * d.features)},
              {DNNL_ARG_SRC_ITER, wrap(state_desc(d), h_in)},
              {DNNL_ARG_SRC_ITER_C, wrap(state_desc(d), c_in)},
              {DNNL_ARG_WEIGHTS_LAYER, kernel},
              {DNNL_ARG_WEIGHTS_ITER, recurrent},
              {DNNL_ARG_BIAS, wrap(bias_desc(d), w.bias)},
              {DNNL_ARG_DST_LAYER, wrap(fwd->y, y_chunk)},
              {DNNL_ARG_DST_ITER, wrap(state_desc(d), h_out)},
              {DNNL_ARG_DST_ITER_C, wrap(state_desc(d), c_out)},
              {DNNL_ARG_SCRATCHPAD,
               wrap(fwd->pd.scratchpad_desc(), scratch.data())},
          });
      stream.wait();
      h_in = h_out;
      c_in = c_out;
    }
    return "";
  } catch (const dnnl::error& e) {
    return e.what();
  }
}

// The training recurrence's arithmetic, in loops the compiler vectorizes
// (one clone per instruction set, picked at load time through glibc's
// ifunc where GCC builds against glibc; elsewhere the baseline only).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    defined(__GLIBC__)
#define FASTLSTM_VECTOR_CLONES \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FASTLSTM_VECTOR_CLONES
#endif

// exp(x) to about 2 ulp: 2^n * exp(r), |r| <= ln(2) / 2, exp(r) by its
// Taylor series to r^7. Clamped where float32 exp over- or underflows.
inline float exp_approx(float x) {
  x = std::min(std::max(x, -87.0f), 88.0f);
  // n = round(x / ln 2), by the float rounding of a large offset.
  const float shift = 12582912.0f;  // 1.5 * 2^23
  float n = (x * 1.44269504088896341f + shift) - shift;
  float r = x - n * 0.693145751953125f;  // ln 2, in two parts
  r = r - n * 1.428606765330187e-06f;
  float p = 1.0f / 5040;
  p = p * r + 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

inline float sigmoid(float x) { return 1.0f / (1.0f + exp_approx(-x)); }

// tanh(x): (1 - e) / (1 + e) with e = exp(-2|x|), and near 0, where that
// loses precision, its Taylor series to x^9 (error below 1e-8 there).
inline float tanh_approx(float x) {
  float a = std::fabs(x);
  float e = exp_approx(-2.0f * a);
  float far = (1.0f - e) / (1.0f + e);
  float x2 = x * x;
  float near = x * (1.0f + x2 * (-1.0f / 3 + x2 * (2.0f / 15 + x2 * (-17.0f / 315 + x2 * (62.0f / 2835)))));
  return a < 0.3f ? near : std::copysign(far, x);
}

// sum += row, over `width` floats.
FASTLSTM_VECTOR_CLONES
void add_row(int64_t width, const float* __restrict row, float* __restrict sum) {
#pragma omp simd
  for (int64_t g = 0; g < width; ++g) sum[g] += row[g];
}

// One row at one step, forward: `z` holds the step's products (bias not
// yet added); `gates` receives the activated gates i, f, g, o, and `c` and
// `h` the new states. `gates` may be `z`, and `c` may be `c_prev`: each
// element is read before it is written.
FASTLSTM_VECTOR_CLONES
void cell_forward(int64_t units, const float* z, const float* __restrict bias,
                  const float* c_prev, float* c, float* __restrict h, float* gates) {
#pragma omp simd
  for (int64_t u = 0; u < units; ++u) {
    float i = sigmoid(z[u] + bias[u]);
    float f = sigmoid(z[units + u] + bias[units + u]);
    float g = tanh_approx(z[2 * units + u] + bias[2 * units + u]);
    float o = sigmoid(z[3 * units + u] + bias[3 * units + u]);
    gates[u] = i;
    gates[units + u] = f;
    gates[2 * units + u] = g;
    gates[3 * units + u] = o;
    float c_new = f * c_prev[u] + i * g;
    c[u] = c_new;
    h[u] = o * tanh_approx(c_new);
  }
}

// One row at one step, backward: from the activated gates `a`, the cell
// states, the gradient reaching h (`dh` through the recurrence, `dy` from
// the output) and `dc` (the gradient reaching c, replaced by the one
// reaching the previous c), the gradients of the gate products `dz`. `dz`
// may be `a` itself: each element is read before it is written.
FASTLSTM_VECTOR_CLONES
void cell_backward(int64_t units, const float* a, const float* __restrict c_prev,
                   const float* __restrict c, const float* __restrict dh,
                   const float* __restrict dy, float* __restrict dc, float* dz) {
#pragma omp simd
  for (int64_t u = 0; u < units; ++u) {
    float i = a[u], f = a[units + u], g = a[2 * units + u], o = a[3 * units + u];
    float tc = tanh_approx(c[u]);
    float dh_total = dh[u] + dy[u];
    float dc_total = dc[u] + dh_total * o * (1.0f - tc * tc);
    dz[u] = dc_total * g * i * (1.0f - i);
    dz[units + u] = dc_total * c_prev[u] * f * (1.0f - f);
    dz[2 * units + u] = dc_total * i * (1.0f - g * g);
    dz[3 * units + u] = dh_total * tc * o * (1.0f - o);
    dc[u] = dc_total * f;
  }
}

using bf16_t = uint16_t;

// `value` rounded to bfloat16, to nearest even; a NaN stays a NaN.
inline bf16_t to_bf16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  const uint32_t rounded = (bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16;
  const bool nan = (bits & 0x7fffffffu) > 0x7f800000u;
  return static_cast<bf16_t>(nan ? (bits >> 16) | 0x40u : rounded);
}

// The (rows, cols) matrix at `from` (leading dimension `ld_from`), times
// `alpha`, rounded to bfloat16 into `to` (leading dimension `ld_to`).
FASTLSTM_VECTOR_CLONES
void round_to_bf16(int64_t rows, int64_t cols, float alpha, const float* from,
                   int64_t ld_from, bf16_t* to, int64_t ld_to) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* in = from + r * ld_from;
    bf16_t* out = to + r * ld_to;
#pragma omp simd
    for (int64_t c = 0; c < cols; ++c) out[c] = to_bf16(alpha * in[c]);
  }
}

// A (rows, cols) float32 tensor rounded to bfloat16, kept by the caller.
std::vector<bf16_t> rounded_copy(const float* from, int64_t rows, int64_t cols) {
  std::vector<bf16_t> to(static_cast<size_t>(rows * cols));
  round_to_bf16(rows, cols, 1.0f, from, cols, to.data(), cols);
  return to;
}

// A buffer of bfloat16 kept per thread and slot (as Buffer): the factors
// rounded for one product, or a part's gradients rounded for several.
bf16_t* kept_bf16(int slot, size_t count) {
  static thread_local std::vector<bf16_t> kept[4];
  if (kept[slot].size() < count) kept[slot].resize(count);
  return kept[slot].data();
}
enum Bf16Slot { kFactorA, kFactorB, kGradients, kLayerInputs };

// oneDNN's bfloat16 matmul of one shape, kept per thread (each thread runs
// its own: a primitive's scratchpad is its own). (m, n, k, transa, transb,
// lda, ldb, ldc, accumulate into C)
using MatmulKey =
    std::tuple<int64_t, int64_t, int64_t, char, char, int64_t, int64_t, int64_t, bool>;
struct Matmul {
  memory::desc a, b, c;
  dnnl::matmul op;
};
// Ragged rows make one shape per number of running rows: a few hundred
// kept shapes cover any batch; past that, all are made afresh.
constexpr size_t kMatmulsKept = 512;

Matmul& bf16_matmul(const MatmulKey& key) {
  static thread_local std::map<MatmulKey, Matmul> kept;
  auto found = kept.find(key);
  if (found != kept.end()) return found->second;
  if (kept.size() >= kMatmulsKept) kept.clear();
  int64_t m, n, k, lda, ldb, ldc;
  char transa, transb;
  bool accumulate;
  std::tie(m, n, k, transa, transb, lda, ldb, ldc, accumulate) = key;
  // A transposed is stored (k, m): element (i, j) at j * lda + i.
  memory::desc a({m, k}, dt::bf16, transa == 'N' ? memory::dims{lda, 1} : memory::dims{1, lda});
  memory::desc b({k, n}, dt::bf16, transb == 'N' ? memory::dims{ldb, 1} : memory::dims{1, ldb});
  memory::desc c({m, n}, dt::f32, memory::dims{ldc, 1});
  dnnl::primitive_attr attr;
  if (accumulate) {
    dnnl::post_ops ops;
    ops.append_sum(1.0f);
    attr.set_post_ops(ops);
  }
  dnnl::matmul op(dnnl::matmul::primitive_desc(cpu_engine(), a, b, c, attr));
  return kept.emplace(key, Matmul{a, b, c, op}).first->second;
}

// C = op(A) op(B) (+ C where `accumulate`), A and B bfloat16, C float32.
void bf16_product(char transa, char transb, int64_t m, int64_t n, int64_t k,
                  const bf16_t* a, int64_t lda, const bf16_t* b, int64_t ldb,
                  bool accumulate, float* c, int64_t ldc) {
  Matmul& mm = bf16_matmul(MatmulKey(m, n, k, transa, transb, lda, ldb, ldc, accumulate));
  static thread_local dnnl::stream stream(cpu_engine());
  mm.op.execute(stream, {{DNNL_ARG_SRC, wrap(mm.a, a)},
                         {DNNL_ARG_WEIGHTS, wrap(mm.b, b)},
                         {DNNL_ARG_DST, wrap(mm.c, c)}});
}

// C = alpha * op(A) op(B) + beta * C, row-major: on oneDNN's GEMM, or with
// `bf16` (Dims::bf16) its bfloat16 matmul, where beta is 0 or 1. `a16` and
// `b16`, where given, are A and B already rounded to bfloat16, laid out as
// A and B (alpha is then 1); the others are rounded here.
void gemm(bool bf16, char transa, char transb, int64_t m, int64_t n, int64_t k,
          float alpha, const float* a, int64_t lda, const float* b, int64_t ldb,
          float beta, float* c, int64_t ldc, const bf16_t* a16 = nullptr,
          const bf16_t* b16 = nullptr) {
  if (m == 0 || n == 0) return;
  if (k == 0) {
    // An empty sum: C = beta * C (BLAS leaves C unread where beta is 0).
    for (int64_t row = 0; row < m; ++row) {
      float* c_row = c + row * ldc;
      for (int64_t col = 0; col < n; ++col) c_row[col] = beta == 0.0f ? 0.0f : beta * c_row[col];
    }
    return;
  }
  if (bf16) {
    if ((beta != 0.0f && beta != 1.0f) || (a16 && alpha != 1.0f)) {
      throw dnnl::error(dnnl_invalid_arguments, "bfloat16 products take beta 0 or 1");
    }
    // The stored matrices: A is (m, k), or (k, m) transposed; B likewise.
    if (!a16) {
      const int64_t rows = transa == 'N' ? m : k, cols = transa == 'N' ? k : m;
      bf16_t* to = kept_bf16(kFactorA, rows * cols);
      round_to_bf16(rows, cols, alpha, a, lda, to, cols);
      a16 = to;
      lda = cols;
    }
    if (!b16) {
      const int64_t rows = transb == 'N' ? k : n, cols = transb == 'N' ? n : k;
      bf16_t* to = kept_bf16(kFactorB, rows * cols);
      round_to_bf16(rows, cols, 1.0f, b, ldb, to, cols);
      b16 = to;
      ldb = cols;
    }
    bf16_product(transa, transb, m, n, k, a16, lda, b16, ldb, beta != 0.0f, c, ldc);
    return;
  }
  dnnl_status_t status = dnnl_sgemm(transa, transb, m, n, k, alpha, a, lda, b,
                                    ldb, beta, c, ldc);
  if (status != dnnl_success) {
    throw dnnl::error(status, "dnnl_sgemm failed");
  }
}

// Where one part keeps, in the training workspace, each step's activated
// gates (rows, steps, 4 * units) and cell states (rows, steps, units).
struct Saved {
  float* gates;
  float* cells;
};

size_t saved_floats(const Dims& d) {
  return static_cast<size_t>(d.batch * d.steps * 5 * d.units);
}

Saved saved_at(const Dims& d, void* base) {
  auto* gates = static_cast<float*>(base);
  return {gates, gates + d.batch * d.steps * 4 * d.units};
}

// Rows of unequal length (their spans, lstm_onednn.h): each step runs only
// the rows still running, so padding costs nothing. Rows are ordered longest
// first, so the rows running at step t are the first running[t] of `order`.
struct Ragged {
  std::vector<int64_t> order;
  std::vector<int64_t> start;    // per row: its first valid step in x
  std::vector<int64_t> length;   // per row, within [0, steps - start]
  std::vector<int64_t> running;  // per step
};

Ragged ragged_rows(const Spans& spans, int64_t rows, int64_t steps) {
  Ragged r;
  r.start.assign(rows, 0);
  r.length.resize(rows);
  for (int64_t row = 0; row < rows; ++row) {
    if (spans.starts) {
      r.start[row] = std::max<int64_t>(0, std::min<int64_t>(spans.starts[row], steps));
    }
    const int64_t length = spans.lengths ? spans.lengths[row] : steps;
    r.length[row] = std::max<int64_t>(0, std::min<int64_t>(length, steps - r.start[row]));
  }
  r.order.resize(rows);
  for (int64_t row = 0; row < rows; ++row) r.order[row] = row;
  std::stable_sort(r.order.begin(), r.order.end(), [&](int64_t a, int64_t b) {
    return r.length[a] > r.length[b];
  });
  r.running.assign(steps, 0);
  for (int64_t row = 0; row < rows; ++row) {
    for (int64_t t = 0; t < r.length[row]; ++t) ++r.running[t];
  }
  return r;
}

// Whether the spans leave any step out.
bool has_padding(const Spans& spans, int64_t rows, int64_t steps) {
  if (!spans.lengths) return false;
  for (int64_t row = 0; row < rows; ++row) {
    if (spans.lengths[row] < steps) return true;
  }
  return false;
}

// The spans of rows [first, ...) of a call.
Spans spans_from(const Spans& spans, int64_t first) {
  return {spans.starts ? spans.starts + first : nullptr,
          spans.lengths ? spans.lengths + first : nullptr};
}

// The recurrence over ragged rows (spans as in lstm_onednn.h), each step
// over the rows still running; with `saved` (training), each step's
// activated gates and cell state are saved, front-aligned, and zeros past a
// row's length (never read, but the same inputs give the same workspace).
// The rows' valid steps are gathered step by step in running order (like
// PyTorch's packed sequences), in chunks of steps whose input products fit
// in kRaggedChunk bytes: one product with the kernel per chunk, and each
// step's product with the recurrent kernel adds onto its rows' input
// products in place, while they are still in cache.
void ragged_recurrence(const Dims& d, const float* x, const float* h0,
                       const float* c0, const Weights& w, const Spans& spans,
                       float* y, float* h_last, float* c_last, const Saved* saved) {
  const int64_t units = d.units, width = 4 * d.units, rows = d.batch;
  const Ragged r = ragged_rows(spans, rows, d.steps);
  // packed[t]: how many running rows precede step t's in the gathered order.
  std::vector<int64_t> packed(d.steps + 1, 0);
  for (int64_t t = 0; t < d.steps; ++t) packed[t + 1] = packed[t] + r.running[t];
  // Chunks [ends[k - 1], ends[k]) of steps: as many as fit, at least one.
  const int64_t fit = std::max<int64_t>(
      1, static_cast<int64_t>(kRaggedChunk / (width * sizeof(float))));
  std::vector<int64_t> ends;
  int64_t most = 0;
  for (int64_t first = 0; first < d.steps && r.running[first];) {
    int64_t end = first + 1;
    while (end < d.steps && r.running[end] && packed[end + 1] - packed[first] <= fit) ++end;
    most = std::max(most, packed[end] - packed[first]);
    ends.push_back(end);
    first = end;
  }
  Buffer inputs(Buffer::kScratch, most * d.features * sizeof(float));
  Buffer products(Buffer::kOutputs, most * width * sizeof(float));
  auto* xs = static_cast<float*>(inputs.data());
  auto* zx = static_cast<float*>(products.data());
  // The rows' states in running order (longest first), so that the rows
  // running at a step are the first ones: h in two buffers, the one read
  // and the one written, c updated in place. A row's final states go to
  // h_last and c_last at its last step (an empty row's are h0 and c0).
  std::memcpy(h_last, h0, rows * units * sizeof(float));
  std::memcpy(c_last, c0, rows * units * sizeof(float));
  std::vector<float> h_read(rows * units), h_written(rows * units), c(rows * units);
  for (int64_t i = 0; i < rows; ++i) {
    std::memcpy(h_read.data() + i * units, h0 + r.order[i] * units, units * sizeof(float));
    std::memcpy(c.data() + i * units, c0 + r.order[i] * units, units * sizeof(float));
  }
  int64_t first = 0;
  for (const int64_t end : ends) {
    const int64_t base = packed[first];
    for (int64_t t = first; t < end; ++t) {
      for (int64_t i = 0; i < r.running[t]; ++i) {
        const int64_t row = r.order[i];
        std::memcpy(xs + (packed[t] - base + i) * d.features,
                    x + (row * d.steps + r.start[row] + t) * d.features,
                    d.features * sizeof(float));
      }
    }
    gemm(d.bf16, 'N', 'N', packed[end] - base, width, d.features, 1.0f, xs,
         d.features, w.kernel, width, 0.0f, zx, width, nullptr, w.kernel_bf16);
    for (int64_t t = first; t < end; ++t) {
      // + h R for the running rows, from their h in running order.
      const int64_t running = r.running[t];
      float* z = zx + (packed[t] - base) * width;
      gemm(d.bf16, 'N', 'N', running, width, units, 1.0f, h_read.data(), units,
           w.recurrent_kernel, width, 1.0f, z, width, nullptr,
           w.recurrent_kernel_bf16);
      const int64_t still = t + 1 < d.steps ? r.running[t + 1] : 0;
      for (int64_t i = 0; i < running; ++i) {
        const int64_t row = r.order[i], at = row * d.steps + t;
        float* h = h_written.data() + i * units;
        float* c_row = c.data() + i * units;
        cell_forward(units, z + i * width, w.bias, c_row, c_row, h,
                     saved ? saved->gates + at * width : z + i * width);
        if (saved) std::memcpy(saved->cells + at * units, c_row, units * sizeof(float));
        if (y) std::memcpy(y + at * units, h, units * sizeof(float));
        if (i >= still) {  // its last step
          std::memcpy(h_last + row * units, h, units * sizeof(float));
          std::memcpy(c_last + row * units, c_row, units * sizeof(float));
        }
      }
      std::swap(h_read, h_written);
    }
    first = end;
  }
  for (int64_t row = 0; row < rows; ++row) {
    const int64_t valid = r.length[row], past = d.steps - valid, at = row * d.steps + valid;
    if (y) std::memset(y + at * units, 0, past * units * sizeof(float));
    if (saved) {
      std::memset(saved->gates + at * width, 0, past * width * sizeof(float));
      std::memset(saved->cells + at * units, 0, past * units * sizeof(float));
    }
  }
}

// `spans` as in lstm_onednn.h; the outputs and what is saved are
// front-aligned: a row's step t is its span's t-th.
std::string training_part(const Dims& d, const float* x, const float* h0,
                          const float* c0, const Weights& w, const Spans& spans,
                          float* y, float* h_last, float* c_last, Saved saved) {
  try {
    PartThread part;
    const int64_t units = d.units, width = 4 * d.units, rows = d.batch;
    if (!has_padding(spans, rows, d.steps)) {
      // The input products of every step at once; rows are (row, step).
      gemm(d.bf16, 'N', 'N', rows * d.steps, width, d.features, 1.0f, x,
           d.features, w.kernel, width, 0.0f, saved.gates, width, nullptr,
           w.kernel_bf16);
      for (int64_t t = 0; t < d.steps; ++t) {
        // Each row's previous h: h0, or its output at t - 1.
        const float* h_prev = t ? y + (t - 1) * units : h0;
        gemm(d.bf16, 'N', 'N', rows, width, units, 1.0f, h_prev,
             t ? d.steps * units : units, w.recurrent_kernel, width, 1.0f,
             saved.gates + t * width, d.steps * width, nullptr,
             w.recurrent_kernel_bf16);
        for (int64_t row = 0; row < rows; ++row) {
          const int64_t at = row * d.steps + t;
          const float* c_prev = t ? saved.cells + (at - 1) * units : c0 + row * units;
          float* gates = saved.gates + at * width;
          cell_forward(units, gates, w.bias, c_prev, saved.cells + at * units,
                       y + at * units, gates);
        }
      }
      for (int64_t row = 0; row < rows; ++row) {
        const int64_t last = row * d.steps + d.steps - 1;
        std::memcpy(h_last + row * units, y + last * units, units * sizeof(float));
        std::memcpy(c_last + row * units, saved.cells + last * units, units * sizeof(float));
      }
      return "";
    }
    ragged_recurrence(d, x, h0, c0, w, spans, y, h_last, c_last, &saved);
    return "";
  } catch (const dnnl::error& e) {
    return e.what();
  }
}

// `dgates` (rows, steps, 4 * units) receives the gradients of the gate
// products; it may be `saved.gates` itself. `spans` as in training_part:
// the gradients reaching outputs past a row's length are not read, and
// those reaching its inputs outside its span are zeros.
std::string backward_part(const Dims& d, const float* x, const float* h0,
                          const float* c0, const Weights& w, const Spans& spans,
                          const float* y, Saved saved,
                          const float* dy, const float* dh_last,
                          const float* dc_last, float* dx, float* dh0,
                          float* dc0, float* dkernel, float* drecurrent_kernel,
                          float* dbias, float* dgates) {
  try {
    PartThread part;
    const int64_t units = d.units, width = 4 * d.units, rows = d.batch;
    const int64_t n = rows * d.steps;
    // The recurrent kernel transposed, for a plain product each step
    // (measured faster than a transposed one); bfloat16 products read the
    // rounded kernel transposed instead.
    std::vector<float> recurrent_t(d.bf16 ? 0 : width * units);
    for (int64_t u = 0; u < (d.bf16 ? 0 : units); ++u) {
      for (int64_t g = 0; g < width; ++g) {
        recurrent_t[g * units + u] = w.recurrent_kernel[u * width + g];
      }
    }
    // dh = dgates R^T for `m` rows of dgates (leading dimension lda).
    auto through_recurrence = [&](int64_t m, const float* dgates_rows, int64_t lda,
                                  float* dh_rows) {
      if (d.bf16) {
        gemm(true, 'N', 'T', m, units, width, 1.0f, dgates_rows, lda,
             w.recurrent_kernel, width, 0.0f, dh_rows, units, nullptr,
             w.recurrent_kernel_bf16);
      } else {
        gemm(false, 'N', 'N', m, units, width, 1.0f, dgates_rows, lda,
             recurrent_t.data(), units, 0.0f, dh_rows, units);
      }
    };
    // With bfloat16 products, the weight work's factors rounded once, each
    // read by several products: (rows, steps, ...) as in float32.
    const bf16_t *x16 = nullptr, *y16 = nullptr, *dgates16 = nullptr;
    auto round_for_weights = [&] {
      if (!d.bf16) return;
      bf16_t* to = kept_bf16(kGradients, n * width);
      round_to_bf16(n, width, 1.0f, dgates, width, to, width);
      dgates16 = to;
      to = kept_bf16(kLayerInputs, n * (d.features + units));
      round_to_bf16(n, d.features, 1.0f, x, d.features, to, d.features);
      x16 = to;
      round_to_bf16(n, units, 1.0f, y, units, to + n * d.features, units);
      y16 = to + n * d.features;
    };
    // A factor rounded above, at `offset` elements, or null.
    auto from16 = [](const bf16_t* base, int64_t offset) {
      return base ? base + offset : nullptr;
    };
    // dh: the gradient reaching each row's h through the recurrence; dc:
    // the gradient reaching its c.
    std::vector<float> dh(dh_last, dh_last + rows * units);
    std::vector<float> dc(dc_last, dc_last + rows * units);
    auto step_backward = [&](int64_t row, int64_t t) {
      const int64_t at = row * d.steps + t;
      const float* c_prev = t ? saved.cells + (at - 1) * units : c0 + row * units;
      cell_backward(units, saved.gates + at * width, c_prev,
                    saved.cells + at * units, dh.data() + row * units,
                    dy + at * units, dc.data() + row * units, dgates + at * width);
    };
    if (!has_padding(spans, rows, d.steps)) {
      for (int64_t t = d.steps - 1; t >= 0; --t) {
        for (int64_t row = 0; row < rows; ++row) step_backward(row, t);
        through_recurrence(rows, dgates + t * width, d.steps * width, dh.data());
      }
      std::memcpy(dh0, dh.data(), rows * units * sizeof(float));
      std::memcpy(dc0, dc.data(), rows * units * sizeof(float));
      round_for_weights();
      // The weight work: one product each over all rows and steps.
      gemm(d.bf16, 'T', 'N', d.features, width, n, 1.0f, x, d.features, dgates,
           width, 0.0f, dkernel, width, x16, dgates16);
      gemm(d.bf16, 'N', 'T', n, d.features, width, 1.0f, dgates, width, w.kernel,
           width, 0.0f, dx, d.features, dgates16, w.kernel_bf16);
      // The recurrent kernel's: sum over steps of h(t - 1)^T dgates(t). In
      // the flat (row, step) order, h(t - 1) is the output one place before,
      // except at each row's step 0, whose h is h0: one product over the
      // shifted outputs, less the pairs that straddle two rows, plus h0's.
      std::memset(drecurrent_kernel, 0, units * width * sizeof(float));
      if (n > 1) {
        gemm(d.bf16, 'T', 'N', units, width, n - 1, 1.0f, y, units, dgates + width,
             width, 1.0f, drecurrent_kernel, width, y16, from16(dgates16, width));
      }
      if (rows > 1) {
        gemm(d.bf16, 'T', 'N', units, width, rows - 1, -1.0f,
             y + (d.steps - 1) * units, d.steps * units, dgates + d.steps * width,
             d.steps * width, 1.0f, drecurrent_kernel, width, nullptr,
             from16(dgates16, d.steps * width));
      }
      gemm(d.bf16, 'T', 'N', units, width, rows, 1.0f, h0, units, dgates,
           d.steps * width, 1.0f, drecurrent_kernel, width, nullptr, dgates16);
      std::memset(dbias, 0, width * sizeof(float));
      for (int64_t at = 0; at < n; ++at) add_row(width, dgates + at * width, dbias);
      return "";
    }
    // Ragged rows: each step runs the rows still running; a row's dh and dc
    // wait, unread, until its last valid step.
    const Ragged r = ragged_rows(spans, rows, d.steps);
    std::vector<float> dz(rows * width), dh_running(rows * units);
    for (int64_t t = d.steps - 1; t >= 0; --t) {
      const int64_t running = r.running[t];
      if (!running) continue;
      for (int64_t i = 0; i < running; ++i) {
        const int64_t row = r.order[i];
        step_backward(row, t);
        std::memcpy(dz.data() + i * width, dgates + (row * d.steps + t) * width,
                    width * sizeof(float));
      }
      through_recurrence(running, dz.data(), width, dh_running.data());
      for (int64_t i = 0; i < running; ++i) {
        std::memcpy(dh.data() + r.order[i] * units, dh_running.data() + i * units,
                    units * sizeof(float));
      }
    }
    std::memcpy(dh0, dh.data(), rows * units * sizeof(float));
    std::memcpy(dc0, dc.data(), rows * units * sizeof(float));
    // Steps past a row's length hold no gradient: zeros, so that what is
    // rounded below is defined (they are never read).
    for (int64_t row = 0; row < rows; ++row) {
      const int64_t valid = r.length[row];
      std::memset(dgates + (row * d.steps + valid) * width, 0,
                  (d.steps - valid) * width * sizeof(float));
    }
    round_for_weights();
    // The weight work, one product per row over its valid steps; nothing
    // reaches the inputs past a row's length.
    std::memset(dkernel, 0, d.features * width * sizeof(float));
    std::memset(drecurrent_kernel, 0, units * width * sizeof(float));
    std::memset(dbias, 0, width * sizeof(float));
    for (int64_t row = 0; row < rows; ++row) {
      const int64_t valid = r.length[row], start = r.start[row];
      const int64_t x_at = (row * d.steps + start) * d.features;
      const int64_t g_at = row * d.steps * width;
      const float* gr = dgates + g_at;
      float* dxr = dx + row * d.steps * d.features;
      gemm(d.bf16, 'T', 'N', d.features, width, valid, 1.0f, x + x_at, d.features,
           gr, width, 1.0f, dkernel, width, from16(x16, x_at), from16(dgates16, g_at));
      std::memset(dxr, 0, d.steps * d.features * sizeof(float));
      gemm(d.bf16, 'N', 'T', valid, d.features, width, 1.0f, gr, width, w.kernel,
           width, 0.0f, dxr + start * d.features, d.features, from16(dgates16, g_at),
           w.kernel_bf16);
      if (valid > 1) {
        gemm(d.bf16, 'T', 'N', units, width, valid - 1, 1.0f,
             y + row * d.steps * units, units, gr + width, width, 1.0f,
             drecurrent_kernel, width, from16(y16, row * d.steps * units),
             from16(dgates16, g_at + width));
      }
      for (int64_t t = 0; t < valid; ++t) add_row(width, gr + t * width, dbias);
    }
    // h0's part, for the rows' first steps (an empty row's are zeros).
    gemm(d.bf16, 'T', 'N', units, width, rows, 1.0f, h0, units, dgates,
         d.steps * width, 1.0f, drecurrent_kernel, width, nullptr, dgates16);
    return "";
  } catch (const dnnl::error& e) {
    return e.what();
  }
}

// Inference over ragged rows: their recurrence, saving nothing.
std::string ragged_inference_part(const Dims& d, const float* x,
                                  const float* h0, const float* c0,
                                  const Weights& w, const Spans& spans,
                                  float* y, float* h_last, float* c_last) {
  try {
    PartThread part;
    ragged_recurrence(d, x, h0, c0, w, spans, y, h_last, c_last, nullptr);
    return "";
  } catch (const dnnl::error& e) {
    return e.what();
  }
}

// Where the parts of a call run (set_part_threads()).
PartThreads part_threads = PartThreads::kOwn;

// Threads that run parts of a call, each part a block of rows. Rows are
// independent, so a call splits into blocks that run start to end on their
// own and meet once at the end, instead of meeting at every step as
// oneDNN's own threads do. Workers sleep while there is no work.
class Workers {
 public:
  static Workers& get() {
    static Workers* workers = new Workers;  // never destroyed: no join at exit
    return *workers;
  }

  // Runs run(part) for every part: part 0 on this thread, the others on
  // workers (or on the caller's OpenMP team); returns the first error.
  std::string run(int parts, const std::function<std::string(int)>& run) {
    if (parts <= 1) return run(0);
    if (part_threads == PartThreads::kCallersOpenMP) {
      std::vector<std::string> errors(parts);
#pragma omp parallel for num_threads(parts) schedule(static, 1)
      for (int part = 0; part < parts; ++part) errors[part] = run(part);
      for (const auto& e : errors) {
        if (!e.empty()) return e;
      }
      return "";
    }
    std::vector<std::string> errors(parts);
    std::mutex done_mutex;
    std::condition_variable done;
    int remaining = parts - 1;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      while (static_cast<int>(threads_.size()) < parts - 1) {
        threads_.emplace_back([this] { serve(); });
      }
      for (int part = 1; part < parts; ++part) {
        tasks_.push_back([&, part] {
          errors[part] = run(part);
          std::lock_guard<std::mutex> lock(done_mutex);
          if (--remaining == 0) done.notify_one();
        });
      }
    }
    wake_.notify_all();
    errors[0] = run(0);
    std::unique_lock<std::mutex> lock(done_mutex);
    done.wait(lock, [&] { return remaining == 0; });
    for (const auto& e : errors) {
      if (!e.empty()) return e;
    }
    return "";
  }

 private:
  void serve() {
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [this] { return !tasks_.empty(); });
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      task();
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> tasks_;
  std::vector<std::thread> threads_;
};

// Fewer rows than this per part would leave oneDNN's products too thin.
constexpr int64_t kMinRowsPerPart = 8;

// The rows [first, first + count) of each part.
struct Part {
  int64_t first, count;
};

// Blocks of consecutive rows, one per part. With `spans` (rows of unequal
// length) each block holds about as many valid steps as the others, since a
// part's time goes with its valid steps; else as many rows.
std::vector<Part> split_rows(int64_t batch, int threads, int64_t steps = 0,
                             const Spans* spans = nullptr) {
  const int64_t parts = std::min<int64_t>(std::max(threads, 1),
                                          std::max<int64_t>(1, batch / kMinRowsPerPart));
  std::vector<Part> result;
  if (spans && has_padding(*spans, batch, steps) && parts > 1) {
    const Ragged r = ragged_rows(*spans, batch, steps);
    int64_t total = 0;
    for (int64_t row = 0; row < batch; ++row) total += r.length[row];
    // The rows [first, end) of part p and the valid steps of rows < end;
    // every later part keeps its minimum of rows.
    int64_t first = 0, before = 0;
    for (int64_t p = 0; p < parts; ++p) {
      const int64_t share = total * (p + 1) / parts;
      const int64_t last_end = batch - (parts - 1 - p) * kMinRowsPerPart;
      int64_t end = first;
      while (end < first + kMinRowsPerPart) before += r.length[end++];
      while (end < last_end && before + r.length[end] / 2 < share) before += r.length[end++];
      if (p == parts - 1) end = batch;
      result.push_back({first, end - first});
      first = end;
    }
    return result;
  }
  for (int64_t p = 0, first = 0; p < parts; ++p) {
    int64_t count = batch / parts + (p < batch % parts ? 1 : 0);
    result.push_back({first, count});
    first += count;
  }
  return result;
}

Dims rows_of(const Dims& d, const Part& part) {
  return {part.count, d.steps, d.features, d.units, d.bf16};
}

// The training workspace: a header (how the rows were split), then each
// part's saved gates and cell states, one part after the other. The
// backward pass reads the number of parts from it and splits the rows as
// the training pass did (split_rows() of the same spans). Its size depends
// on the shape and the number of parts only, not on how the rows were
// split (XLA and TensorFlow ask for it before the spans are known); it is
// what it was when each part began at a multiple of 64 bytes, so that a
// size kept by torch.compile's caches stays right.
constexpr size_t kHeader = 64;

struct Layout {
  std::vector<Part> parts;
  std::vector<size_t> offsets;
  size_t bytes;
};

Layout workspace_layout(const Dims& d, const std::vector<Part>& parts) {
  const size_t row_bytes = saved_floats({1, d.steps, d.features, d.units}) * sizeof(float);
  Layout layout{parts, {}, kHeader};
  for (const Part& part : parts) layout.offsets.push_back(kHeader + part.first * row_bytes);
  // The size: each part of an even split, rounded up to 64 bytes.
  for (const Part& even : split_rows(d.batch, static_cast<int>(parts.size()))) {
    layout.bytes += (even.count * row_bytes + 63) / 64 * 64;
  }
  return layout;
}

// (2, 5, 7), as Python prints a shape.
std::string shape_text(const std::vector<int64_t>& shape) {
  std::string text = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) text += ", ";
    text += std::to_string(shape[i]);
  }
  return text + (shape.size() == 1 ? ",)" : ")");
}

// `w` with its kernels rounded to bfloat16 where `d.bf16`, into `keep`.
Weights with_bf16(const Dims& d, const Weights& w, std::vector<bf16_t> keep[2]) {
  if (!d.bf16) return w;
  Weights rounded = w;
  keep[0] = rounded_copy(w.kernel, d.features, 4 * d.units);
  keep[1] = rounded_copy(w.recurrent_kernel, d.units, 4 * d.units);
  rounded.kernel_bf16 = keep[0].data();
  rounded.recurrent_kernel_bf16 = keep[1].data();
  return rounded;
}

}  // namespace

bool bf16_products_supported() {
  static const bool supported = [] {
    try {
      // The CPU's instructions: AVX512-BF16, or AMX, which includes them
      // (oneDNN's ISA values include the bits of those they extend).
      const auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
      const auto bf16 = static_cast<unsigned>(dnnl::cpu_isa::avx512_core_bf16);
      if ((isa & bf16) != bf16) return false;
      // And oneDNN's matmul for them: its reference one takes bfloat16
      // anywhere, slowly.
      memory::desc a({8, 8}, dt::bf16, memory::dims{8, 1});
      memory::desc c({8, 8}, dt::f32, memory::dims{8, 1});
      dnnl::matmul::primitive_desc pd(cpu_engine(), a, a, c);
      return std::string(pd.impl_info_str()).rfind("ref", 0) != 0;
    } catch (const dnnl::error&) {
      return false;
    }
  }();
  return supported;
}

void set_part_threads(PartThreads threads) { part_threads = threads; }

std::string check_shapes(const std::vector<int64_t>& x,
                         const std::vector<int64_t>& h0,
                         const std::vector<int64_t>& c0,
                         const std::vector<int64_t>& kernel,
                         const std::vector<int64_t>& recurrent_kernel,
                         const std::vector<int64_t>& bias) {
  if (x.size() != 3 || kernel.size() != 2 || recurrent_kernel.size() != 2 ||
      bias.size() != 1 || h0.size() != 2 || c0.size() != 2) {
    return "expected inputs of rank 3, states and kernels of rank 2 and a "
           "bias of rank 1, got inputs " + shape_text(x) + ", states " +
           shape_text(h0) + " and " + shape_text(c0) + ", kernels " +
           shape_text(kernel) + " and " + shape_text(recurrent_kernel) +
           ", bias " + shape_text(bias);
  }
  const int64_t units = recurrent_kernel[0];
  if (kernel[0] != x[2]) {
    const std::string built = std::to_string(kernel[0]);
    const std::string got = std::to_string(x[2]);
    return "Received an invalid value for argument `inputs`: this layer was "
           "built for " + built + " features per step (its kernel has shape " +
           shape_text(kernel) + "), got inputs of shape " + shape_text(x) +
           " with " + got + ". Pass inputs with " + built +
           " features, or use a new layer for " + got + ".";
  }
  if (recurrent_kernel[1] != 4 * units || kernel[1] != 4 * units ||
      bias[0] != 4 * units) {
    return "the kernels " + shape_text(kernel) + " and " +
           shape_text(recurrent_kernel) + " and the bias " + shape_text(bias) +
           " are not those of one LSTM layer of " + std::to_string(units) +
           " units";
  }
  const std::vector<int64_t> state{x[0], units};
  if (h0 != state || c0 != state) {
    return "expected initial states of shape " + shape_text(state) + ", got " +
           shape_text(h0) + " and " + shape_text(c0);
  }
  return "";
}

std::string lstm_inference(const Dims& d, const float* x, const float* h0,
                           const float* c0, const Weights& w, const Spans& spans,
                           float* y, float* h_last, float* c_last, int threads) {
  if (d.batch == 0) return "";
  const size_t state_bytes = static_cast<size_t>(d.batch * d.units) * sizeof(float);
  if (d.steps == 0) {
    // No step: the states pass through.
    std::memcpy(h_last, h0, state_bytes);
    std::memcpy(c_last, c0, state_bytes);
    return "";
  }
  if (d.features == 0) {
    // oneDNN's primitive takes no empty input: one zero feature with a zero
    // kernel row adds nothing to the gates.
    std::vector<float> zero_x(static_cast<size_t>(d.batch * d.steps), 0.0f);
    std::vector<float> zero_kernel(static_cast<size_t>(4 * d.units), 0.0f);
    return lstm_inference({d.batch, d.steps, 1, d.units, d.bf16}, zero_x.data(), h0,
                          c0, {zero_kernel.data(), w.recurrent_kernel, w.bias},
                          spans, y, h_last, c_last, threads);
  }
  // Rows with padding run fastlstm's own recurrence, which skips it, and so
  // do bfloat16 products; else oneDNN's inference primitive, which runs
  // every step of every row.
  const bool ragged = d.bf16 || has_padding(spans, d.batch, d.steps);
  std::vector<bf16_t> keep[2];
  const Weights w16 = with_bf16(d, w, keep);
  std::vector<Part> parts = split_rows(d.batch, threads, d.steps, &spans);
  return Workers::get().run(static_cast<int>(parts.size()), [&](int p) {
    const Part& part = parts[p];
    const Dims rows = rows_of(d, part);
    const float* xp = x + part.first * d.steps * d.features;
    const float* h0p = h0 + part.first * d.units;
    const float* c0p = c0 + part.first * d.units;
    float* yp = y ? y + part.first * d.steps * d.units : nullptr;
    float* hp = h_last + part.first * d.units;
    float* cp = c_last + part.first * d.units;
    if (ragged) {
      return ragged_inference_part(rows, xp, h0p, c0p, w16,
                                   spans_from(spans, part.first), yp, hp, cp);
    }
    return inference_part(rows, xp, h0p, c0p, w, yp, hp, cp);
  });
}

std::string inference_chunk_steps(const Dims& dims, bool outputs,
                                  int64_t* steps) {
  try {
    *steps = chunk_steps(dims, !outputs);
    return "";
  } catch (const dnnl::error& e) {
    return e.what();
  }
}

std::string workspace_bytes(const Dims& dims, int threads, size_t* bytes) {
  *bytes = workspace_layout(dims, split_rows(dims.batch, threads)).bytes;
  return "";
}

std::string lstm_training(const Dims& d, const float* x, const float* h0,
                          const float* c0, const Weights& w, const Spans& spans,
                          float* y, float* h_last, float* c_last,
                          void* workspace, int threads) {
  Layout layout = workspace_layout(d, split_rows(d.batch, threads, d.steps, &spans));
  char* base = static_cast<char*>(workspace);
  // The bytes no part writes (the header's rest, and past the last part)
  // are zeros: the same inputs give the same workspace, byte for byte.
  std::memset(base, 0, kHeader);
  const size_t written = kHeader + saved_floats(d) * sizeof(float);
  std::memset(base + written, 0, layout.bytes - written);
  auto* header = static_cast<int64_t*>(workspace);
  header[0] = static_cast<int64_t>(layout.parts.size());
  if (d.steps == 0) {
    // No step: the states pass through.
    const size_t state_bytes = static_cast<size_t>(d.batch * d.units) * sizeof(float);
    if (state_bytes) {
      std::memcpy(h_last, h0, state_bytes);
      std::memcpy(c_last, c0, state_bytes);
    }
    return "";
  }
  std::vector<bf16_t> keep[2];
  const Weights w16 = with_bf16(d, w, keep);
  return Workers::get().run(static_cast<int>(layout.parts.size()), [&](int p) {
    const Part& part = layout.parts[p];
    const Dims rows = rows_of(d, part);
    return training_part(
        rows, x + part.first * d.steps * d.features, h0 + part.first * d.units,
        c0 + part.first * d.units, w16, spans_from(spans, part.first),
        y + part.first * d.steps * d.units,
        h_last + part.first * d.units, c_last + part.first * d.units,
        saved_at(rows, base + layout.offsets[p]));
  });
}

std::string lstm_backward(const Dims& d, const float* x, const float* h0,
                          const float* c0, const Weights& w, const Spans& spans,
                          const float* y,
                          const void* workspace, const float* dy,
                          const float* dh_last, const float* dc_last,
                          float* dx, float* dh0, float* dc0, float* dkernel,
                          float* drecurrent_kernel, float* dbias, void* scratch) {
  const int parts = static_cast<int>(static_cast<const int64_t*>(workspace)[0]);
  Layout layout = workspace_layout(d, split_rows(d.batch, parts, d.steps, &spans));
  if (static_cast<int>(layout.parts.size()) != parts) {
    return "the workspace does not come from a training pass of this shape";
  }
  if (d.steps == 0) {
    // No step: the gradients reaching the final states reach the initial
    // ones; nothing reaches the weights.
    const size_t state_bytes = static_cast<size_t>(d.batch * d.units) * sizeof(float);
    if (state_bytes) {
      std::memcpy(dh0, dh_last, state_bytes);
      std::memcpy(dc0, dc_last, state_bytes);
    }
    std::memset(dkernel, 0, static_cast<size_t>(d.features * 4 * d.units) * sizeof(float));
    std::memset(drecurrent_kernel, 0, static_cast<size_t>(d.units * 4 * d.units) * sizeof(float));
    std::memset(dbias, 0, static_cast<size_t>(4 * d.units) * sizeof(float));
    return "";
  }
  // Each part's weight gradients land in a buffer of its own (part 0's in
  // the outputs) and are summed at the end.
  const size_t sizes[3] = {static_cast<size_t>(d.features * 4 * d.units),
                           static_cast<size_t>(d.units * 4 * d.units),
                           static_cast<size_t>(4 * d.units)};
  float* outputs[3] = {dkernel, drecurrent_kernel, dbias};
  std::vector<std::vector<float>> partial(parts > 1 ? 3 * (parts - 1) : 0);
  for (int p = 1; p < parts; ++p) {
    for (int k = 0; k < 3; ++k) partial[3 * (p - 1) + k].resize(sizes[k]);
  }
  // The saved state is only read; each part's gate gradients go to the
  // same place in `scratch` (which may be the workspace itself).
  auto* base = static_cast<char*>(const_cast<void*>(workspace));
  auto* scratch_base = static_cast<char*>(scratch);
  std::vector<bf16_t> keep[2];
  const Weights w16 = with_bf16(d, w, keep);
  std::string error = Workers::get().run(parts, [&](int p) {
    const Part& part = layout.parts[p];
    const Dims rows = rows_of(d, part);
    float* grads[3];
    for (int k = 0; k < 3; ++k) {
      grads[k] = p == 0 ? outputs[k] : partial[3 * (p - 1) + k].data();
    }
    const int64_t at = part.first * d.steps;
    return backward_part(
        rows, x + at * d.features, h0 + part.first * d.units,
        c0 + part.first * d.units, w16, spans_from(spans, part.first),
        y + at * d.units,
        saved_at(rows, base + layout.offsets[p]), dy + at * d.units,
        dh_last + part.first * d.units, dc_last + part.first * d.units,
        dx + at * d.features, dh0 + part.first * d.units,
        dc0 + part.first * d.units, grads[0], grads[1], grads[2],
        saved_at(rows, scratch_base + layout.offsets[p]).gates);
  });
  if (!error.empty()) return error;
  for (int p = 1; p < parts; ++p) {
    for (int k = 0; k < 3; ++k) {
      const float* from = partial[3 * (p - 1) + k].data();
      for (size_t i = 0; i < sizes[k]; ++i) outputs[k][i] += from[i];
    }
  }
  return "";
}

}  // namespace fastlstm
