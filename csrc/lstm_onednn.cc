// oneDNN's LSTM primitives behind the small interface of lstm_onednn.h.
//
// Primitive descriptors and primitives are created once per shape and kept:
// creating them costs far more than running a small LSTM. Weights come in
// Keras's plain layout and are reordered, per call, into whatever layout the
// primitive prefers (they change at every training step). Scratchpads are
// kept per thread (see Buffer), so one primitive can run on several threads
// at once.

#include "lstm_onednn.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
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

// One forward primitive: `steps` steps of inputs laid out as `x`, outputs
// as `y`.
struct Forward {
  memory::desc x, y;
  dnnl::lstm_forward::primitive_desc pd;
  dnnl::lstm_forward op;
  Reorder kernel, recurrent_kernel;

  Forward(const Dims& d, dnnl::prop_kind kind, const memory::desc& x_desc,
          const memory::desc& y_desc)
      : x(x_desc),
        y(y_desc),
        pd(cpu_engine(), kind, dnnl::rnn_direction::unidirectional_left2right,
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

struct Backward {
  dnnl::lstm_backward::primitive_desc pd;
  dnnl::lstm_backward op;
  Reorder kernel, recurrent_kernel, dkernel, drecurrent_kernel;

  Backward(const Dims& d, const Forward& training)
      : pd(cpu_engine(), dnnl::prop_kind::backward,
           dnnl::rnn_direction::unidirectional_left2right, training.x,
           state_desc(d), state_desc(d),
           weights_desc(d.features, d.units, tag::any),
           weights_desc(d.units, d.units, tag::any), bias_desc(d), training.y,
           state_desc(d), state_desc(d), training.x, state_desc(d),
           state_desc(d), weights_desc(d.features, d.units, tag::any),
           weights_desc(d.units, d.units, tag::any), bias_desc(d), training.y,
           state_desc(d), state_desc(d), training.pd, user_scratchpad()),
        op(pd),
        kernel(weights_desc(d.features, d.units, tag::ldigo),
               pd.weights_layer_desc()),
        recurrent_kernel(weights_desc(d.units, d.units, tag::ldigo),
                         pd.weights_iter_desc()),
        dkernel(pd.diff_weights_layer_desc(),
                weights_desc(d.features, d.units, tag::ldigo)),
        drecurrent_kernel(pd.diff_weights_iter_desc(),
                          weights_desc(d.units, d.units, tag::ldigo)) {}
};

// (batch, steps, features, units, what, total steps of x, of y or 0)
using Key = std::tuple<int64_t, int64_t, int64_t, int64_t, int, int64_t, int64_t>;
enum What { kInference = 0, kTraining = 1, kBackward = 2 };

std::mutex cache_mutex;
std::map<Key, std::shared_ptr<Forward>> forward_cache;
std::map<Key, std::shared_ptr<Backward>> backward_cache;

// A chunk of `steps` steps of an inference pass over `total` steps; its
// outputs go to a (batch, total, units) tensor or, with `own_y`, to a
// buffer of the chunk's own.
std::shared_ptr<Forward> get_inference(const Dims& d, int64_t steps,
                                       int64_t total, bool own_y) {
  std::lock_guard<std::mutex> lock(cache_mutex);
  int64_t y_total = own_y ? steps : total;
  auto& entry = forward_cache[Key(d.batch, steps, d.features, d.units,
                                  kInference, total, own_y ? 0 : total)];
  if (!entry) {
    entry = std::make_shared<Forward>(
        d, dnnl::prop_kind::forward_inference,
        sequence_desc(d, steps, total, d.features),
        sequence_desc(d, steps, y_total, d.units));
  }
  return entry;
}

std::shared_ptr<Forward> get_training(const Dims& d) {
  std::lock_guard<std::mutex> lock(cache_mutex);
  auto& entry = forward_cache[Key(d.batch, d.steps, d.features, d.units,
                                  kTraining, d.steps, d.steps)];
  if (!entry) {
    entry = std::make_shared<Forward>(
        d, dnnl::prop_kind::forward_training,
        sequence_desc(d, d.steps, d.steps, d.features),
        sequence_desc(d, d.steps, d.steps, d.units));
  }
  return entry;
}

std::shared_ptr<Backward> get_backward(const Dims& d) {
  auto training = get_training(d);
  std::lock_guard<std::mutex> lock(cache_mutex);
  auto& entry = backward_cache[Key(d.batch, d.steps, d.features, d.units,
                                   kBackward, d.steps, d.steps)];
  if (!entry) entry = std::make_shared<Backward>(d, *training);
  return entry;
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

struct Threads {
  explicit Threads(int n) {
    if (n > 0) omp_set_num_threads(n);
  }
};

// Steps per inference chunk: all of them, unless the scratchpad would pass
// kChunkScratch; it grows with the number of steps.
int64_t chunk_steps(const Dims& d, bool own_y) {
  size_t all = get_inference(d, d.steps, d.steps, own_y)->pd.scratchpad_desc().get_size();
  if (all <= kChunkScratch) return d.steps;
  size_t per_step = all / static_cast<size_t>(d.steps) + 1;
  return std::max<int64_t>(1, static_cast<int64_t>(kChunkScratch / per_step));
}

}  // namespace

std::string lstm_inference(const Dims& d, const float* x, const float* h0,
                           const float* c0, const Weights& w,
                           const int32_t* lengths, float* y, float* h_last,
                           float* c_last, int threads) {
  try {
    Threads use(threads);
    const bool own_y = (y == nullptr);
    const int64_t chunk = chunk_steps(d, own_y);
    const size_t state_bytes = state_desc(d).get_size();
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
      // With lengths, the final h is read from the outputs, not kept.
      if (chunk < d.steps || lengths) h_states[i].resize(d.batch * d.units);
      if (chunk < d.steps) c_states[i].resize(d.batch * d.units);
    }
    const float* h_in = h0;
    const float* c_in = c0;
    if (lengths) std::memset(h_last, 0, state_bytes);
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
      float* h_out = (last && !lengths) ? h_last : h_states[k % 2].data();
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
      if (lengths) {
        // Each row's last valid output, where it falls in this chunk.
        const int64_t y_stride = own_y ? steps : d.steps;
        for (int64_t row = 0; row < d.batch; ++row) {
          const int64_t t = static_cast<int64_t>(lengths[row]) - 1 - start;
          if (t < 0 || t >= steps) continue;
          std::memcpy(h_last + row * d.units,
                      y_chunk + (row * y_stride + t) * d.units,
                      d.units * sizeof(float));
        }
      }
      h_in = h_out;
      c_in = c_out;
    }
    if (lengths && y) {
      // Outputs past a row's length are zeros.
      for (int64_t row = 0; row < d.batch; ++row) {
        const int64_t valid = std::max<int64_t>(0, std::min<int64_t>(lengths[row], d.steps));
        std::memset(y + (row * d.steps + valid) * d.units, 0,
                    (d.steps - valid) * d.units * sizeof(float));
      }
    }
    return "";
  } catch (const dnnl::error& e) {
    return e.what();
  }
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

std::string workspace_bytes(const Dims& dims, size_t* bytes) {
  try {
    *bytes = get_training(dims)->pd.workspace_desc().get_size();
    return "";
  } catch (const dnnl::error& e) {
    return e.what();
  }
}

std::string lstm_training(const Dims& d, const float* x, const float* h0,
                          const float* c0, const Weights& w, float* y,
                          float* h_last, float* c_last, void* workspace,
                          int threads) {
  try {
    Threads use(threads);
    auto fwd = get_training(d);
    dnnl::stream stream(cpu_engine());
    std::vector<memory> keep;
    memory kernel = to_primitive_layout(fwd->kernel, w.kernel, stream, keep);
    memory recurrent =
        to_primitive_layout(fwd->recurrent_kernel, w.recurrent_kernel, stream, keep);
    Buffer scratch(Buffer::kScratch, fwd->pd.scratchpad_desc().get_size());
    fwd->op.execute(
        stream,
        {
            {DNNL_ARG_SRC_LAYER, wrap(fwd->x, x)},
            {DNNL_ARG_SRC_ITER, wrap(state_desc(d), h0)},
            {DNNL_ARG_SRC_ITER_C, wrap(state_desc(d), c0)},
            {DNNL_ARG_WEIGHTS_LAYER, kernel},
            {DNNL_ARG_WEIGHTS_ITER, recurrent},
            {DNNL_ARG_BIAS, wrap(bias_desc(d), w.bias)},
            {DNNL_ARG_DST_LAYER, wrap(fwd->y, y)},
            {DNNL_ARG_DST_ITER, wrap(state_desc(d), h_last)},
            {DNNL_ARG_DST_ITER_C, wrap(state_desc(d), c_last)},
            {DNNL_ARG_WORKSPACE, wrap(fwd->pd.workspace_desc(), workspace)},
            {DNNL_ARG_SCRATCHPAD, wrap(fwd->pd.scratchpad_desc(), scratch.data())},
        });
    stream.wait();
    return "";
  } catch (const dnnl::error& e) {
    return e.what();
  }
}

std::string lstm_backward(const Dims& d, const float* x, const float* h0,
                          const float* c0, const Weights& w, const float* y,
                          const float* h_last, const float* c_last,
                          const void* workspace, const float* dy,
                          const float* dh_last, const float* dc_last,
                          float* dx, float* dh0, float* dc0, float* dkernel,
                          float* drecurrent_kernel, float* dbias, int threads) {
  try {
    Threads use(threads);
    auto fwd = get_training(d);
    auto bwd = get_backward(d);
    dnnl::stream stream(cpu_engine());
    std::vector<memory> keep;
    memory kernel = to_primitive_layout(bwd->kernel, w.kernel, stream, keep);
    memory recurrent =
        to_primitive_layout(bwd->recurrent_kernel, w.recurrent_kernel, stream, keep);
    // oneDNN accumulates into the weight gradients: they start at zero.
    memory dk = bwd->dkernel.op ? memory(bwd->dkernel.from, cpu_engine())
                                : wrap(bwd->dkernel.to, dkernel);
    memory dr = bwd->drecurrent_kernel.op
                    ? memory(bwd->drecurrent_kernel.from, cpu_engine())
                    : wrap(bwd->drecurrent_kernel.to, drecurrent_kernel);
    std::memset(dk.get_data_handle(), 0, dk.get_desc().get_size());
    std::memset(dr.get_data_handle(), 0, dr.get_desc().get_size());
    std::memset(dbias, 0, bias_desc(d).get_size());
    Buffer scratch(Buffer::kScratch, bwd->pd.scratchpad_desc().get_size());
    bwd->op.execute(
        stream,
        {
            {DNNL_ARG_SRC_LAYER, wrap(fwd->x, x)},
            {DNNL_ARG_SRC_ITER, wrap(state_desc(d), h0)},
            {DNNL_ARG_SRC_ITER_C, wrap(state_desc(d), c0)},
            {DNNL_ARG_WEIGHTS_LAYER, kernel},
            {DNNL_ARG_WEIGHTS_ITER, recurrent},
            {DNNL_ARG_BIAS, wrap(bias_desc(d), w.bias)},
            {DNNL_ARG_DST_LAYER, wrap(fwd->y, y)},
            {DNNL_ARG_DST_ITER, wrap(state_desc(d), h_last)},
            {DNNL_ARG_DST_ITER_C, wrap(state_desc(d), c_last)},
            {DNNL_ARG_WORKSPACE, wrap(bwd->pd.workspace_desc(), workspace)},
            {DNNL_ARG_DIFF_DST_LAYER, wrap(fwd->y, dy)},
            {DNNL_ARG_DIFF_DST_ITER, wrap(state_desc(d), dh_last)},
            {DNNL_ARG_DIFF_DST_ITER_C, wrap(state_desc(d), dc_last)},
            {DNNL_ARG_DIFF_SRC_LAYER, wrap(fwd->x, dx)},
            {DNNL_ARG_DIFF_SRC_ITER, wrap(state_desc(d), dh0)},
            {DNNL_ARG_DIFF_SRC_ITER_C, wrap(state_desc(d), dc0)},
            {DNNL_ARG_DIFF_WEIGHTS_LAYER, dk},
            {DNNL_ARG_DIFF_WEIGHTS_ITER, dr},
            {DNNL_ARG_DIFF_BIAS, wrap(bias_desc(d), dbias)},
            {DNNL_ARG_SCRATCHPAD, wrap(bwd->pd.scratchpad_desc(), scratch.data())},
        });
    if (bwd->dkernel.op) {
      memory out = wrap(bwd->dkernel.to, dkernel);
      bwd->dkernel.op->execute(stream, dk, out);
    }
    if (bwd->drecurrent_kernel.op) {
      memory out = wrap(bwd->drecurrent_kernel.to, drecurrent_kernel);
      bwd->drecurrent_kernel.op->execute(stream, dr, out);
    }
    stream.wait();
    return "";
  } catch (const dnnl::error& e) {
    return e.what();
  }
}

}  // namespace fastlstm
