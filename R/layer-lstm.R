#' Long Short-Term Memory layer - Hochreiter 1997.
#'
#' @description
#' Based on available runtime hardware and constraints, this layer will
#' choose different implementations (cuDNN-based or backend-native) to
#' maximize the performance. If a GPU is available and all the arguments to
#' the layer meet the requirement of the cuDNN kernel (see below for
#' details), the layer will use a fast cuDNN implementation when using the
#' TensorFlow backend. The requirements to use the cuDNN implementation
#' are:
#'
#' 1. `activation` == `tanh`
#' 2. `recurrent_activation` == `sigmoid`
#' 3. `recurrent_dropout` == 0
#' 4. `unroll` is `FALSE`
#' 5. `use_bias` is `TRUE`
#' 6. Inputs, if use masking, are strictly right-padded.
#' 7. Eager execution is enabled in the outermost context.
#'
#' For example:
#'
#' ```r
#' input <- random_uniform(c(32, 10, 8))
#' output <- input |> layer_lstm(4)
#' shape(output)
#' ```
#'
#' ```
#' ## shape(32, 4)
#' ```
#'
#' ```r
#' lstm <- layer_lstm(units = 4, return_sequences = TRUE, return_state = TRUE)
#' c(whole_seq_output, final_memory_state, final_carry_state) %<-% lstm(input)
#' shape(whole_seq_output)
#' ```
#'
#' ```
#' ## shape(32, 10, 4)
#' ```
#'
#' ```r
#' shape(final_memory_state)
#' ```
#'
#' ```
#' ## shape(32, 4)
#' ```
#'
#' ```r
#' shape(final_carry_state)
#' ```
#'
#' ```
#' ## shape(32, 4)
#' ```
#'
#' @section Where fastlstm differs from keras3:
#' The text above is the keras3 page for `layer_lstm()`. The layer fastlstm
#' builds, `fastlstm.LSTM`, is a drop-in replacement for `keras.layers.LSTM`
#' (same arguments, same weights, same results as Keras's generic LSTM to
#' float tolerance), and differs in where the fast kernel runs:
#'
#' - **A fused kernel on every backend.** On a CPU, every backend runs
#'   fastlstm's one compiled kernel, its C++ core on oneDNN (a TensorFlow op,
#'   an XLA FFI call on JAX, a PyTorch custom op); on a GPU, every backend
#'   runs cuDNN. Where neither can run (a mask with holes, other
#'   activations, recurrent dropout in training), an optimised loop runs.
#' - **Requirement 6 is relaxed.** A mask need only be contiguous: right-padded
#'   rows go to cuDNN as sequence lengths, and left-padded rows (the default
#'   of `pad_sequences()`) are shifted to right-padded and back. The compiled
#'   CPU kernel reads each row's valid steps where they lie and runs only
#'   those: padding costs nothing. Only masks with holes fall back to the
#'   loop. A masked step carries the state over on every kernel (Keras's
#'   TensorFlow cuDNN path writes zeros instead).
#' - **Mixed precision keeps the fast kernels.** Under `mixed_float16` or
#'   `mixed_bfloat16` the compiled kernel (and cuDNN for bfloat16) computes
#'   in float32 inside and returns the policy's dtype. Under
#'   `mixed_bfloat16`, on a CPU with AMX or AVX512-BF16, the compiled
#'   kernel's matrix products take bfloat16 factors and keep float32 sums
#'   (the plan says so); `FASTLSTM_DISABLE_BF16=1` keeps them in float32.
#' - **Exported models run without fastlstm.** A call traced by Keras's
#'   `model$export()` (any format), `torch.export` or
#'   `tf.saved_model.save()` runs the loop, which any runtime carries, with
#'   the same numbers.
#' - **Requirement 7 does not apply.** It is a constraint from TensorFlow 1;
#'   fastlstm chooses its kernel from the layer, the call, the backend and
#'   the device, inside a compiled function (`tf.function`, `jax.jit`) as
#'   well as eagerly.
#' - **`use_cudnn` means the same on every backend.** `TRUE` where cuDNN
#'   cannot run is an error that names each unmet requirement (Keras on
#'   PyTorch ignores it silently). [lstm_plan()] shows which kernel a call
#'   uses and which requirements hold.
#' - **`dropout` and `recurrent_dropout` outside \[0, 1\] are errors**
#'   (Keras clips them silently).
#'
#' @section Using fastlstm's layer_lstm() with keras3:
#' keras3 has a `layer_lstm()` too, which builds `keras.layers.LSTM`; where
#' both packages are attached, the one attached last provides it, and
#' `fastlstm::layer_lstm()` always builds fastlstm's. Where keras3 is
#' installed, everything else fastlstm exports under a keras3 name
#' ([shape()], [fit()], [compile()], [keras_model_sequential()], ...) is
#' keras3's own function, and fastlstm registers none of keras3's S3
#' methods, so loading fastlstm changes no keras3 result. Both packages use
#' the R session's one Python, the environment keras3 uses: install fastlstm
#' there with `install_fastlstm(envname = "r-keras")`.
#'
#' @section keras3's layer arguments:
#' As in keras3, `input_shape` (the shape of one sample: the layer starts a
#' Sequential model with that input), `batch_input_shape` or `batch_size`
#' with `input_shape` (for a layer that starts a Sequential model:
#' `keras_model_sequential() |> layer_lstm(4, batch_input_shape = c(32, 10,
#' 8))`), `name`, `dtype` and `trainable` are taken through `...`. A
#' misspelled argument is an error that names it.
#'
#' @param object Object to compose the layer with. A tensor, array, or
#'   sequential model.
#' @param units Positive integer, dimensionality of the output space.
#' @param activation Activation function to use. Default: hyperbolic tangent
#'   (`tanh`). If you pass `NULL`, no activation is applied (ie. "linear"
#'   activation: `a(x) = x`).
#' @param recurrent_activation Activation function to use for the recurrent
#'   step. Default: sigmoid (`sigmoid`). If you pass `NULL`, no activation is
#'   applied (ie. "linear" activation: `a(x) = x`).
#' @param use_bias Boolean, (default `TRUE`), whether the layer should use a
#'   bias vector.
#' @param kernel_initializer Initializer for the `kernel` weights matrix, used
#'   for the linear transformation of the inputs. Default: `"glorot_uniform"`.
#' @param recurrent_initializer Initializer for the `recurrent_kernel` weights
#'   matrix, used for the linear transformation of the recurrent state.
#'   Default: `"orthogonal"`.
#' @param bias_initializer Initializer for the bias vector. Default: `"zeros"`.
#' @param unit_forget_bias Boolean (default `TRUE`). If `TRUE`, add 1 to the
#'   bias of the forget gate at initialization. Setting it to `TRUE` will also
#'   force `bias_initializer="zeros"`. This is recommended in [Jozefowicz et
#'   al.](https://github.com/mlresearch/v37/blob/gh-pages/jozefowicz15.pdf)
#' @param kernel_regularizer Regularizer function applied to the `kernel`
#'   weights matrix. Default: `NULL`.
#' @param recurrent_regularizer Regularizer function applied to the
#'   `recurrent_kernel` weights matrix. Default: `NULL`.
#' @param bias_regularizer Regularizer function applied to the bias vector.
#'   Default: `NULL`.
#' @param activity_regularizer Regularizer function applied to the output of
#'   the layer (its "activation"). Default: `NULL`.
#' @param kernel_constraint Constraint function applied to the `kernel`
#'   weights matrix. Default: `NULL`.
#' @param recurrent_constraint Constraint function applied to the
#'   `recurrent_kernel` weights matrix. Default: `NULL`.
#' @param bias_constraint Constraint function applied to the bias vector.
#'   Default: `NULL`.
#' @param dropout Float between 0 and 1. Fraction of the units to drop for the
#'   linear transformation of the inputs. Default: 0.
#' @param recurrent_dropout Float between 0 and 1. Fraction of the units to
#'   drop for the linear transformation of the recurrent state. Default: 0.
#' @param seed Random seed for dropout.
#' @param return_sequences Boolean. Whether to return the last output in the
#'   output sequence, or the full sequence. Default: `FALSE`.
#' @param return_state Boolean. Whether to return the last state in addition
#'   to the output. Default: `FALSE`.
#' @param go_backwards Boolean (default: `FALSE`). If `TRUE`, process the
#'   input sequence backwards and return the reversed sequence.
#' @param stateful Boolean (default: `FALSE`). If `TRUE`, the last state for
#'   each sample at index i in a batch will be used as initial state for the
#'   sample of index i in the following batch.
#' @param unroll Boolean (default `FALSE`). If `TRUE`, the network will be
#'   unrolled, else a symbolic loop will be used. Unrolling can speed-up a
#'   RNN, although it tends to be more memory-intensive. Unrolling is only
#'   suitable for short sequences.
#' @param use_cudnn Whether to use a cuDNN-backed implementation. `"auto"`
#'   will attempt to use cuDNN when feasible, and will fallback to the default
#'   implementation if not. (fastlstm: `TRUE` makes cuDNN required, an error
#'   where it cannot run; `FALSE` never uses it. Any other value is an
#'   error.)
#' @param ... For forward/backward compatability. (fastlstm: passed to
#'   `fastlstm.LSTM` by name, e.g. `name`, `dtype`, `input_shape`,
#'   `zero_output_for_mask`; see keras3's layer arguments below.)
#'
#' @returns
#' The return value depends on the value provided for the first argument.
#' If `object` is:
#' - a [keras_model_sequential()], then the layer is added to the sequential
#'   model (which is modified in place). To enable piping, the sequential
#'   model is also returned, invisibly.
#' - a [keras_input()], then the output tensor from calling `layer(input)` is
#'   returned.
#' - `NULL` or missing, then a `Layer` instance is returned.
#'
#' (fastlstm: a tensor or an R array is handled like a [keras_input()]: the
#' layer is called on it. With `return_state = TRUE` the result is a list of
#' three tensors, `list(output, h, c)`, ready for [`%<-%`]. Any other
#' `object` is an error.)
#'
#' @section Call Arguments:
#' - `inputs`: A 3D tensor, with shape `(batch, timesteps, feature)`.
#' - `mask`: Binary tensor of shape `(samples, timesteps)` indicating
#'   whether a given timestep should be masked (optional). An individual
#'   `TRUE` entry indicates that the corresponding timestep should be
#'   utilized, while a `FALSE` entry indicates that the corresponding
#'   timestep should be ignored. Defaults to `NULL`.
#' - `training`: Boolean indicating whether the layer should behave in
#'   training mode or in inference mode. This argument is passed to the
#'   cell when calling it. This is only relevant if `dropout` or
#'   `recurrent_dropout` is used (optional). Defaults to `NULL`.
#' - `initial_state`: List of initial state tensors to be passed to the
#'   first call of the cell (optional, `NULL` causes creation of
#'   zero-filled initial state tensors). Defaults to `NULL`.
#'
#' @seealso
#' - <https://keras.io/api/layers/recurrent_layers/lstm#lstm-class>
#' - [lstm_plan()], to see which kernel a call uses.
#' @family lstm rnn layers
#' @family layers
#' @export
#' @examplesIf fastlstm_available()
#' input <- random_uniform(c(32, 10, 8))
#' output <- input |> layer_lstm(4)
#' shape(output)
#'
#' lstm <- layer_lstm(units = 4, return_sequences = TRUE, return_state = TRUE)
#' c(whole_seq_output, final_memory_state, final_carry_state) %<-% lstm(input)
#' shape(whole_seq_output)
#' shape(final_memory_state)
#' shape(final_carry_state)
layer_lstm <- function(object, units,
                       activation = "tanh",
                       recurrent_activation = "sigmoid",
                       use_bias = TRUE,
                       kernel_initializer = "glorot_uniform",
                       recurrent_initializer = "orthogonal",
                       bias_initializer = "zeros",
                       unit_forget_bias = TRUE,
                       kernel_regularizer = NULL,
                       recurrent_regularizer = NULL,
                       bias_regularizer = NULL,
                       activity_regularizer = NULL,
                       kernel_constraint = NULL,
                       recurrent_constraint = NULL,
                       bias_constraint = NULL,
                       dropout = 0,
                       recurrent_dropout = 0,
                       seed = NULL,
                       return_sequences = FALSE,
                       return_state = FALSE,
                       go_backwards = FALSE,
                       stateful = FALSE,
                       unroll = FALSE,
                       use_cudnn = "auto",
                       ...) {
  if (missing(object)) object <- NULL
  check_units(units, missing(units), object)
  check_fraction(dropout, "dropout")
  check_fraction(recurrent_dropout, "recurrent_dropout")
  check_use_cudnn(use_cudnn)
  check_flags(use_bias = use_bias, unit_forget_bias = unit_forget_bias,
              return_sequences = return_sequences, return_state = return_state,
              go_backwards = go_backwards, stateful = stateful,
              unroll = unroll)
  args <- capture_args(list(units = as.integer, seed = as_integer_or_null))
  create_layer(function() py_fastlstm()$LSTM, object, args)
}

#' Cell class for the LSTM layer.
#'
#' @description
#' This class processes one step within the whole time sequence input,
#' whereas [layer_lstm()] processes the whole sequence. fastlstm builds a
#' `fastlstm.LSTMCell`, a subclass of `keras.layers.LSTMCell`.
#'
#' @inheritParams layer_lstm
#' @param ... For forward/backward compatability. (Passed to
#'   `fastlstm.LSTMCell` by name.)
#' @returns A `Layer` instance: the cell, to be wrapped by [layer_rnn()]
#'   (which runs an LSTM cell on fastlstm's kernel).
#'
#' @section Call Arguments:
#' - `inputs`: A 2D tensor, with shape `(batch, features)`.
#' - `states`: A 2D tensor with shape `(batch, units)`, which is the state
#'   from the previous time step.
#' - `training`: Boolean indicating whether the layer should behave in
#'   training mode or in inference mode. Only relevant when `dropout` or
#'   `recurrent_dropout` is used.
#'
#' @family lstm rnn layers
#' @family layers
#' @export
#' @examplesIf fastlstm_available()
#' input <- random_uniform(c(32, 10, 8))
#' rnn <- layer_rnn(cell = rnn_cell_lstm(4))
#' shape(rnn(input))
rnn_cell_lstm <- function(units,
                          activation = "tanh",
                          recurrent_activation = "sigmoid",
                          use_bias = TRUE,
                          kernel_initializer = "glorot_uniform",
                          recurrent_initializer = "orthogonal",
                          bias_initializer = "zeros",
                          unit_forget_bias = TRUE,
                          kernel_regularizer = NULL,
                          recurrent_regularizer = NULL,
                          bias_regularizer = NULL,
                          kernel_constraint = NULL,
                          recurrent_constraint = NULL,
                          bias_constraint = NULL,
                          dropout = 0,
                          recurrent_dropout = 0,
                          seed = NULL,
                          ...) {
  check_units(units, missing(units))
  check_fraction(dropout, "dropout")
  check_fraction(recurrent_dropout, "recurrent_dropout")
  check_flags(use_bias = use_bias, unit_forget_bias = unit_forget_bias)
  args <- capture_args(list(units = as.integer, seed = as_integer_or_null),
                       ignore = character())
  create_layer(function() py_fastlstm()$LSTMCell, NULL, args)
}
