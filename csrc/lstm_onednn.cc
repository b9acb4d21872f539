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
#include <condition_variable>
#include <deque>
#include <functional>
#include <cstring>
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

// Each part of a call runs oneDNN on one thread: fastlstm parallelises over
// rows itself (see Workers), never inside oneDNN, whose per-step OpenMP
// barriers stall whenever the framework's own threads hold a core.
struct OneThread {
  OneThread() { omp_set_num_threads(1); }
};

// Steps per inference chunk: all of them, unless the scratchpad would pass
// kChunkScratch; it grows with the number of steps.
int64_t chunk_steps(const Dims& d, bool own_y) {
  size_t all = get_inference(d, d.steps, d.steps, own_y)->pd.scratchpad_desc().get_size();
  if (all <= kChunkScratch) return d.steps;
  size_t per_step = all / static_cast<size_t>(d.steps) + 1;
  return std::max<int64_t>(1, static_cast<int64_t>(kChunkScratch / per_step));
}

std::string inference_part(const Dims& d, const float* x, const float* h0,
                           const float* c0, const Weights& w,
                           const int32_t* lengths, float* y, float* h_last,
                           float* c_last) {
  try {
    OneThread use;
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

std::string training_part(const Dims& d, const float* x, const float* h0,
                          const float* c0, const Weights& w, float* y,
                          float* h_last, float* c_last, void* workspace) {
  try {
    OneThread use;
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

std::string backward_part(const Dims& d, const float* x, const float* h0,
                          const float* c0, const Weights& w, const float* y,
                          const float* h_last, const float* c_last,
                          const void* workspace, const float* dy,
                          const float* dh_last, const float* dc_last,
                          float* dx, float* dh0, float* dc0, float* dkernel,
                          float* drecurrent_kernel, float* dbias) {
  try {
    OneThread use;
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
  // workers; returns the first error.
  std::string run(int parts, const std::function<std::string(int)>& run) {
    if (parts <= 1) return run(0);
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

std::vector<Part> split_rows(int64_t batch, int threads) {
  int64_t parts = std::min<int64_t>(std::max(threads, 1),
                                    std::max<int64_t>(1, batch / kMinRowsPerPart));
  std::vector<Part> result;
  for (int64_t p = 0, first = 0; p < parts; ++p) {
    int64_t count = batch / parts + (p < batch % parts ? 1 : 0);
    result.push_back({first, count});
    first += count;
  }
  return result;
}

Dims rows_of(const Dims& d, const Part& part) {
  return {part.count, d.steps, d.features, d.units};
}

// The training workspace: a header (how the rows were split), then each
// part's oneDNN workspace. The backward pass reads the split from it.
constexpr size_t kHeader = 64;

struct Layout {
  std::vector<Part> parts;
  std::vector<size_t> offsets;
  size_t bytes;
};

Layout workspace_layout(const Dims& d, const std::vector<Part>& parts) {
  Layout layout{parts, {}, kHeader};
  for (const Part& part : parts) {
    layout.offsets.push_back(layout.bytes);
    size_t bytes = get_training(rows_of(d, part))->pd.workspace_desc().get_size();
    layout.bytes += (bytes + 63) / 64 * 64;
  }
  return layout;
}

}  // namespace

std::string lstm_inference(const Dims& d, const float* x, const float* h0,
                           const float* c0, const Weights& w,
                           const int32_t* lengths, float* y, float* h_last,
                           float* c_last, int threads) {
  std::vector<Part> parts = split_rows(d.batch, threads);
  return Workers::get().run(static_cast<int>(parts.size()), [&](int p) {
    const Part& part = parts[p];
    return inference_part(
        rows_of(d, part), x + part.first * d.steps * d.features,
        h0 + part.first * d.units, c0 + part.first * d.units, w,
        lengths ? lengths + part.first : nullptr,
        y ? y + part.first * d.steps * d.units : nullptr,
        h_last + part.first * d.units, c_last + part.first * d.units);
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
  try {
    *bytes = workspace_layout(dims, split_rows(dims.batch, threads)).bytes;
    return "";
  } catch (const dnnl::error& e) {
    return e.what();
  }
}

std::string lstm_training(const Dims& d, const float* x, const float* h0,
                          const float* c0, const Weights& w, float* y,
                          float* h_last, float* c_last, void* workspace,
                          int threads) {
  Layout layout;
  try {
    layout = workspace_layout(d, split_rows(d.batch, threads));
  } catch (const dnnl::error& e) {
    return e.what();
  }
  auto* header = static_cast<int64_t*>(workspace);
  header[0] = static_cast<int64_t>(layout.parts.size());
  char* base = static_cast<char*>(workspace);
  return Workers::get().run(static_cast<int>(layout.parts.size()), [&](int p) {
    const Part& part = layout.parts[p];
    return training_part(
        rows_of(d, part), x + part.first * d.steps * d.features,
        h0 + part.first * d.units, c0 + part.first * d.units, w,
        y + part.first * d.steps * d.units, h_last + part.first * d.units,
        c_last + part.first * d.units, base + layout.offsets[p]);
  });
}

std::string lstm_backward(const Dims& d, const float* x, const float* h0,
                          const float* c0, const Weights& w, const float* y,
                          const float* h_last, const float* c_last,
                          const void* workspace, const float* dy,
                          const float* dh_last, const float* dc_last,
                          float* dx, float* dh0, float* dc0, float* dkernel,
                          float* drecurrent_kernel, float* dbias, int threads) {
  (void)threads;  // the split is the training pass's, read from its workspace
  const int parts = static_cast<int>(static_cast<const int64_t*>(workspace)[0]);
  Layout layout;
  try {
    layout = workspace_layout(d, split_rows(d.batch, parts));
  } catch (const dnnl::error& e) {
    return e.what();
  }
  if (static_cast<int>(layout.parts.size()) != parts) {
    return "the workspace does not come from a training pass of this shape";
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
  const char* base = static_cast<const char*>(workspace);
  std::string error = Workers::get().run(parts, [&](int p) {
    const Part& part = layout.parts[p];
    float* grads[3];
    for (int k = 0; k < 3; ++k) {
      grads[k] = p == 0 ? outputs[k] : partial[3 * (p - 1) + k].data();
    }
    const int64_t rows = part.first * d.steps;
    return backward_part(
        rows_of(d, part), x + rows * d.features, h0 + part.first * d.units,
        c0 + part.first * d.units, w, y + rows * d.units,
        h_last + part.first * d.units, c_last + part.first * d.units,
        base + layout.offsets[p], dy + rows * d.units,
        dh_last + part.first * d.units, dc_last + part.first * d.units,
        dx + rows * d.features, dh0 + part.first * d.units,
        dc0 + part.first * d.units, grads[0], grads[1], grads[2]);
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
