// oneDNN's LSTM primitives behind the small interface of lstm_onednn.h.
//
// Primitive descriptors and primitives are created once per shape and kept:
// creating them costs far more than running a small LSTM. Weights come in
// Keras's plain layout and are reordered, per call, into whatever layout the
// primitive prefers (they change at every training step). Scratchpads are
// per thread (see Scratch), so one primitive can run on several threads at
// once.

#include "lstm_onednn.h"

#include <omp.h>

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

dnnl::engine& cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// Descriptors of the user-side tensors, in Keras's layouts.
struct UserDescs {
  memory::desc x, state, kernel, recurrent_kernel, bias, y;

  explicit UserDescs(const Dims& d)
      : x({d.steps, d.batch, d.features}, dt::f32, tag::ntc),
        state({1, 1, d.batch, d.units}, dt::f32, tag::ldnc),
        kernel({1, 1, d.features, 4, d.units}, dt::f32, tag::ldigo),
        recurrent_kernel({1, 1, d.units, 4, d.units}, dt::f32, tag::ldigo),
        bias({1, 1, 4, d.units}, dt::f32, tag::ldgo),
        y({d.steps, d.batch, d.units}, dt::f32, tag::ntc) {}
};

memory::desc any_weights(int64_t rows, int64_t units) {
  return memory::desc({1, 1, rows, 4, units}, dt::f32, tag::any);
}

dnnl::primitive_attr user_scratchpad() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

dnnl::lstm_forward::primitive_desc forward_pd(const Dims& d,
                                              dnnl::prop_kind kind) {
  UserDescs u(d);
  return dnnl::lstm_forward::primitive_desc(
      cpu_engine(), kind, dnnl::rnn_direction::unidirectional_left2right, u.x,
      u.state, u.state, any_weights(d.features, d.units),
      any_weights(d.units, d.units), u.bias, u.y, u.state, u.state,
      user_scratchpad());
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

struct Forward {
  dnnl::lstm_forward::primitive_desc pd;
  dnnl::lstm_forward op;
  Reorder kernel, recurrent_kernel;

  Forward(const Dims& d, dnnl::prop_kind kind)
      : pd(forward_pd(d, kind)),
        op(pd),
        kernel(UserDescs(d).kernel, pd.weights_layer_desc()),
        recurrent_kernel(UserDescs(d).recurrent_kernel, pd.weights_iter_desc()) {}
};

struct Backward {
  dnnl::lstm_backward::primitive_desc pd;
  dnnl::lstm_backward op;
  Reorder kernel, recurrent_kernel, dkernel, drecurrent_kernel;

  Backward(const Dims& d, const Forward& training)
      : pd(make_pd(d, training)),
        op(pd),
        kernel(UserDescs(d).kernel, pd.weights_layer_desc()),
        recurrent_kernel(UserDescs(d).recurrent_kernel, pd.weights_iter_desc()),
        dkernel(pd.diff_weights_layer_desc(), UserDescs(d).kernel),
        drecurrent_kernel(pd.diff_weights_iter_desc(),
                          UserDescs(d).recurrent_kernel) {}

  static dnnl::lstm_backward::primitive_desc make_pd(const Dims& d,
                                                     const Forward& training) {
    UserDescs u(d);
    return dnnl::lstm_backward::primitive_desc(
        cpu_engine(), dnnl::prop_kind::backward,
        dnnl::rnn_direction::unidirectional_left2right, u.x, u.state, u.state,
        any_weights(d.features, d.units), any_weights(d.units, d.units), u.bias,
        u.y, u.state, u.state, u.x, u.state, u.state,
        any_weights(d.features, d.units), any_weights(d.units, d.units), u.bias,
        u.y, u.state, u.state, training.pd, user_scratchpad());
  }
};

using Key = std::tuple<int64_t, int64_t, int64_t, int64_t, int>;

Key key_of(const Dims& d, int kind) {
  return Key(d.batch, d.steps, d.features, d.units, kind);
}

enum Kind { kInference = 0, kTraining = 1, kBackward = 2 };

std::mutex cache_mutex;
std::map<Key, std::shared_ptr<Forward>> forward_cache;
std::map<Key, std::shared_ptr<Backward>> backward_cache;

std::shared_ptr<Forward> get_forward(const Dims& d, bool training) {
  std::lock_guard<std::mutex> lock(cache_mutex);
  auto& entry = forward_cache[key_of(d, training ? kTraining : kInference)];
  if (!entry) {
    entry = std::make_shared<Forward>(
        d, training ? dnnl::prop_kind::forward_training
                    : dnnl::prop_kind::forward_inference);
  }
  return entry;
}

std::shared_ptr<Backward> get_backward(const Dims& d) {
  auto training = get_forward(d, true);
  std::lock_guard<std::mutex> lock(cache_mutex);
  auto& entry = backward_cache[key_of(d, kBackward)];
  if (!entry) entry = std::make_shared<Backward>(d, *training);
  return entry;
}

memory wrap(const memory::desc& desc, const void* data) {
  return memory(desc, cpu_engine(), const_cast<void*>(data));
}

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

// A scratchpad for one primitive execution. Up to kKeptScratch bytes, the
// buffer is kept per thread and reused: the inference primitive asks for
// tens of MB, and fresh pages would cost a page fault each on every call.
class Scratch {
 public:
  explicit Scratch(const memory::desc& desc) {
    size_t bytes = desc.get_size();
    void* data = nullptr;
    if (bytes > kKeptScratch) {
      own_.reset(new char[bytes]);
      data = own_.get();
    } else {
      static thread_local std::vector<char> kept;
      if (kept.size() < bytes) kept.resize(bytes);
      data = kept.data();
    }
    memory_ = memory(desc, cpu_engine(), data);
  }
  const memory& get() const { return memory_; }

 private:
  static constexpr size_t kKeptScratch = size_t(128) << 20;
  std::unique_ptr<char[]> own_;
  memory memory_;
};

struct Threads {
  explicit Threads(int n) {
    if (n > 0) omp_set_num_threads(n);
  }
};

}  // namespace

std::string workspace_bytes(const Dims& dims, size_t* bytes) {
  try {
    *bytes = get_forward(dims, true)->pd.workspace_desc().get_size();
    return "";
  } catch (const dnnl::error& e) {
    return e.what();
  }
}

std::string lstm_forward(const Dims& d, const float* x, const float* h0,
                         const float* c0, const Weights& w, float* y,
                         float* h_last, float* c_last, void* workspace,
                         int threads) {
  try {
    Threads use(threads);
    auto fwd = get_forward(d, workspace != nullptr);
    UserDescs u(d);
    dnnl::stream stream(cpu_engine());
    std::vector<memory> keep;
    memory kernel = to_primitive_layout(fwd->kernel, w.kernel, stream, keep);
    memory recurrent =
        to_primitive_layout(fwd->recurrent_kernel, w.recurrent_kernel, stream, keep);
    Scratch scratch(fwd->pd.scratchpad_desc());
    std::unordered_map<int, memory> args = {
        {DNNL_ARG_SRC_LAYER, wrap(u.x, x)},
        {DNNL_ARG_SRC_ITER, wrap(u.state, h0)},
        {DNNL_ARG_SRC_ITER_C, wrap(u.state, c0)},
        {DNNL_ARG_WEIGHTS_LAYER, kernel},
        {DNNL_ARG_WEIGHTS_ITER, recurrent},
        {DNNL_ARG_BIAS, wrap(u.bias, w.bias)},
        {DNNL_ARG_DST_LAYER, wrap(u.y, y)},
        {DNNL_ARG_DST_ITER, wrap(u.state, h_last)},
        {DNNL_ARG_DST_ITER_C, wrap(u.state, c_last)},
        {DNNL_ARG_SCRATCHPAD, scratch.get()},
    };
    if (workspace) {
      args[DNNL_ARG_WORKSPACE] = wrap(fwd->pd.workspace_desc(), workspace);
    }
    fwd->op.execute(stream, args);
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
    auto bwd = get_backward(d);
    UserDescs u(d);
    dnnl::stream stream(cpu_engine());
    std::vector<memory> keep;
    memory kernel = to_primitive_layout(bwd->kernel, w.kernel, stream, keep);
    memory recurrent =
        to_primitive_layout(bwd->recurrent_kernel, w.recurrent_kernel, stream, keep);
    // oneDNN accumulates into the weight gradients: they start at zero.
    memory dk = bwd->dkernel.op ? memory(bwd->dkernel.from, cpu_engine())
                                : wrap(u.kernel, dkernel);
    memory dr = bwd->drecurrent_kernel.op
                    ? memory(bwd->drecurrent_kernel.from, cpu_engine())
                    : wrap(u.recurrent_kernel, drecurrent_kernel);
    std::memset(dk.get_data_handle(), 0, dk.get_desc().get_size());
    std::memset(dr.get_data_handle(), 0, dr.get_desc().get_size());
    std::memset(dbias, 0, u.bias.get_size());
    Scratch scratch(bwd->pd.scratchpad_desc());
    bwd->op.execute(
        stream,
        {
            {DNNL_ARG_SRC_LAYER, wrap(u.x, x)},
            {DNNL_ARG_SRC_ITER, wrap(u.state, h0)},
            {DNNL_ARG_SRC_ITER_C, wrap(u.state, c0)},
            {DNNL_ARG_WEIGHTS_LAYER, kernel},
            {DNNL_ARG_WEIGHTS_ITER, recurrent},
            {DNNL_ARG_BIAS, wrap(u.bias, w.bias)},
            {DNNL_ARG_DST_LAYER, wrap(u.y, y)},
            {DNNL_ARG_DST_ITER, wrap(u.state, h_last)},
            {DNNL_ARG_DST_ITER_C, wrap(u.state, c_last)},
            {DNNL_ARG_WORKSPACE, wrap(bwd->pd.workspace_desc(), workspace)},
            {DNNL_ARG_DIFF_DST_LAYER, wrap(u.y, dy)},
            {DNNL_ARG_DIFF_DST_ITER, wrap(u.state, dh_last)},
            {DNNL_ARG_DIFF_DST_ITER_C, wrap(u.state, dc_last)},
            {DNNL_ARG_DIFF_SRC_LAYER, wrap(u.x, dx)},
            {DNNL_ARG_DIFF_SRC_ITER, wrap(u.state, dh0)},
            {DNNL_ARG_DIFF_SRC_ITER_C, wrap(u.state, dc0)},
            {DNNL_ARG_DIFF_WEIGHTS_LAYER, dk},
            {DNNL_ARG_DIFF_WEIGHTS_ITER, dr},
            {DNNL_ARG_DIFF_BIAS, wrap(u.bias, dbias)},
            {DNNL_ARG_SCRATCHPAD, scratch.get()},
        });
    if (bwd->dkernel.op) {
      memory out = wrap(u.kernel, dkernel);
      bwd->dkernel.op->execute(stream, dk, out);
    }
    if (bwd->drecurrent_kernel.op) {
      memory out = wrap(u.recurrent_kernel, drecurrent_kernel);
      bwd->drecurrent_kernel.op->execute(stream, dr, out);
    }
    stream.wait();
    return "";
  } catch (const dnnl::error& e) {
    return e.what();
  }
}

}  // namespace fastlstm
