// fastlstm's native CPU kernel: one LSTM layer over whole sequences, forward
// and backward, on oneDNN's LSTM primitives.
//
// Layouts are Keras's: inputs (batch, time, features) batch-major; kernel
// (features, 4 * units), recurrent kernel (units, 4 * units) and bias
// (4 * units,), gate order i, f, c, o (oneDNN's `ldigo` / `ldgo` with one
// layer and one direction); states (batch, units). Every row runs all time
// steps: masks and per-row lengths are handled by the Python side.
//
// The framework bindings (JAX FFI, TensorFlow op) call these functions; the
// Python side owns shapes, dtypes and error messages. Functions return an
// empty string on success, else oneDNN's error.

#ifndef FASTLSTM_LSTM_ONEDNN_H_
#define FASTLSTM_LSTM_ONEDNN_H_

#include <cstddef>
#include <cstdint>
#include <string>

namespace fastlstm {

struct Dims {
  int64_t batch;
  int64_t steps;
  int64_t features;
  int64_t units;
};

struct Weights {
  const float* kernel;            // (features, 4 * units)
  const float* recurrent_kernel;  // (units, 4 * units)
  const float* bias;              // (4 * units,)
};

// Bytes of the workspace a training forward pass leaves for the backward.
std::string workspace_bytes(const Dims& dims, size_t* bytes);

// Forward over all steps. `workspace` is null for inference, else a buffer
// of workspace_bytes() that lstm_backward() reads.
std::string lstm_forward(const Dims& dims, const float* x, const float* h0,
                         const float* c0, const Weights& w, float* y,
                         float* h_last, float* c_last, void* workspace,
                         int threads);

// Gradients of one forward pass. `y`, `h_last`, `c_last` and `workspace` are
// that pass's outputs; `dy`, `dh_last`, `dc_last` the incoming gradients.
std::string lstm_backward(const Dims& dims, const float* x, const float* h0,
                          const float* c0, const Weights& w, const float* y,
                          const float* h_last, const float* c_last,
                          const void* workspace, const float* dy,
                          const float* dh_last, const float* dc_last,
                          float* dx, float* dh0, float* dc0, float* dkernel,
                          float* drecurrent_kernel, float* dbias, int threads);

}  // namespace fastlstm

#endif  // FASTLSTM_LSTM_ONEDNN_H_
