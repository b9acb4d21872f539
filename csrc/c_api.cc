// C binding: the kernel of lstm_onednn.h behind plain C functions, for
// ctypes. PyTorch's custom ops (fastlstm/kernels/torch.py) call all of them;
// JAX's binding asks two of them for sizes XLA needs before a call.
//
// Every function returns 0 on success (or a size), and -1 with the error
// copied into `error` (`error_size` bytes, always NUL-terminated).
// Pointers are to contiguous float32 tensors in the layouts of
// lstm_onednn.h; Python checks shapes and dtypes before it calls.

#include <cstring>
#include <string>

#include "lstm_onednn.h"

namespace {

int64_t report(const std::string& e, char* error, size_t error_size) {
  if (e.empty()) return 0;
  if (error_size > 0) {
    std::strncpy(error, e.c_str(), error_size - 1);
    error[error_size - 1] = '\0';
  }
  return -1;
}

}  // namespace

extern "C" {

// Runs the blocks of rows of later calls on the caller's OpenMP team
// (`callers_openmp` != 0) or on fastlstm's own threads; see
// lstm_onednn.h's PartThreads.
void fastlstm_use_callers_openmp_threads(int32_t callers_openmp) {
  fastlstm::set_part_threads(callers_openmp ? fastlstm::PartThreads::kCallersOpenMP
                                            : fastlstm::PartThreads::kOwn);
}

// 1 where this CPU makes bfloat16 products natively (Dims::bf16), else 0.
int32_t fastlstm_bf16_products_supported() {
  return fastlstm::bf16_products_supported() ? 1 : 0;
}

// The workspace size of a training pass, or -1.
int64_t fastlstm_workspace_bytes(int64_t batch, int64_t steps, int64_t features,
                                 int64_t units, int32_t threads, char* error,
                                 size_t error_size) {
  size_t bytes = 0;
  std::string e = fastlstm::workspace_bytes({batch, steps, features, units},
                                            threads, &bytes);
  if (!e.empty()) return report(e, error, error_size);
  return static_cast<int64_t>(bytes);
}

// The steps per chunk of an inference pass, or -1.
int64_t fastlstm_inference_chunk_steps(int64_t batch, int64_t steps,
                                       int64_t features, int64_t units,
                                       int32_t outputs, char* error,
                                       size_t error_size) {
  int64_t chunk = 0;
  std::string e = fastlstm::inference_chunk_steps(
      {batch, steps, features, units}, outputs != 0, &chunk);
  if (!e.empty()) return report(e, error, error_size);
  return chunk;
}

// lstm_inference(); `starts`, `lengths` and `y` may be null; `bf16` is
// Dims::bf16. Likewise below.
int64_t fastlstm_lstm_inference(int64_t batch, int64_t steps, int64_t features,
                                int64_t units, int32_t bf16, const float* x, const float* h0,
                                const float* c0, const float* kernel,
                                const float* recurrent_kernel, const float* bias,
                                const int32_t* starts, const int32_t* lengths,
                                float* y, float* h_last, float* c_last,
                                int32_t threads, char* error, size_t error_size) {
  return report(
      fastlstm::lstm_inference({batch, steps, features, units, bf16 != 0}, x, h0, c0,
                               {kernel, recurrent_kernel, bias}, {starts, lengths},
                               y, h_last, c_last, threads),
      error, error_size);
}

// lstm_training(); `starts` and `lengths` may be null.
int64_t fastlstm_lstm_training(int64_t batch, int64_t steps, int64_t features,
                               int64_t units, int32_t bf16, const float* x, const float* h0,
                               const float* c0, const float* kernel,
                               const float* recurrent_kernel, const float* bias,
                               const int32_t* starts, const int32_t* lengths,
                               float* y, float* h_last, float* c_last,
                               void* workspace, int32_t threads, char* error,
                               size_t error_size) {
  return report(
      fastlstm::lstm_training({batch, steps, features, units, bf16 != 0}, x, h0, c0,
                              {kernel, recurrent_kernel, bias}, {starts, lengths},
                              y, h_last, c_last, workspace, threads),
      error, error_size);
}

// lstm_backward(); `starts` and `lengths` may be null.
int64_t fastlstm_lstm_backward(int64_t batch, int64_t steps, int64_t features,
                               int64_t units, int32_t bf16, const float* x, const float* h0,
                               const float* c0, const float* kernel,
                               const float* recurrent_kernel, const float* bias,
                               const int32_t* starts, const int32_t* lengths,
                               const float* y, const void* workspace,
                               const float* dy, const float* dh_last,
                               const float* dc_last, float* dx, float* dh0,
                               float* dc0, float* dkernel,
                               float* drecurrent_kernel, float* dbias,
                               void* scratch, char* error, size_t error_size) {
  return report(
      fastlstm::lstm_backward({batch, steps, features, units, bf16 != 0}, x, h0, c0,
                              {kernel, recurrent_kernel, bias}, {starts, lengths},
                              y, workspace, dy, dh_last, dc_last, dx, dh0, dc0,
                              dkernel, drecurrent_kernel, dbias, scratch),
      error, error_size);
}

}  // extern "C"
