"""fastlstm.LSTM: keras.layers.LSTM with a kernel chosen per call."""

import keras
from keras import ops
from keras import tree
from keras.src.backend import in_symbolic_scope

from fastlstm import _sequence
from fastlstm import _validation
from fastlstm import kernels as _kernels
from fastlstm import planner


@keras.saving.register_keras_serializable(package="fastlstm")
class LSTM(keras.layers.LSTM):
    """Long Short-Term Memory layer - Hochreiter 1997, fast on every backend.

    A drop-in replacement for `keras.layers.LSTM`: the same arguments,
    weights, semantics and saved form, with one more promise: each call runs
    the fastest kernel that gives the reference numbers (Keras's generic
    loop), and `fastlstm.plan()` tells which one and why.

    - `cudnn` on a GPU, on TensorFlow, JAX and PyTorch alike, also for
      masked batches whose rows are one contiguous span each: right-padded
      rows go in as sequence lengths, left-padded rows (the default of
      `pad_sequences()`) are rotated to the front and back.
    - `native` on a CPU: torch's fused LSTM on PyTorch, oneDNN's LSTM
      (compiled with fastlstm) on TensorFlow and JAX, with the same
      handling of masks.
    - `loop` otherwise: a backend loop with the input projection hoisted out
      of the recurrence and the gates fused.
    - `unrolled` with `unroll=True`.

    Args: as `keras.layers.LSTM`. Where Keras clips `dropout` and
    `recurrent_dropout` into [0, 1], fastlstm raises a `ValueError`;
    `use_cudnn=True` raises where cuDNN cannot run, naming each unmet
    requirement, on every backend.
    """

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        unit_forget_bias=True,
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        seed=None,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        unroll=False,
        use_cudnn="auto",
        **kwargs,
    ):
        units = _validation.check_units(units)
        dropout = _validation.check_rate("dropout", dropout)
        recurrent_dropout = _validation.check_rate(
            "recurrent_dropout", recurrent_dropout
        )
        _validation.check_activation("activation", activation)
        _validation.check_activation("recurrent_activation", recurrent_activation)
        _validation.check_use_cudnn(use_cudnn)
        super().__init__(
            units,
            activation=activation,
            recurrent_activation=recurrent_activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            unit_forget_bias=unit_forget_bias,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer,
            kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            seed=seed,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            unroll=unroll,
            use_cudnn=use_cudnn,
            **kwargs,
        )
        # The rank is checked in build() and call(), with a message that
        # names `inputs`, instead of by a generic InputSpec.
        self.input_spec = None

    def build(self, sequences_shape=None, initial_state_shape=None):
        # `sequences_shape` is None when the layer is called on None.
        _validation.check_inputs_shape(sequences_shape)
        if self.stateful:
            _validation.check_stateful_batch(sequences_shape)
        super().build(sequences_shape, initial_state_shape)

    def compute_output_shape(self, sequences_shape, initial_state_shape=None):
        # Symbolic calls (keras.Input) get the shape checks of a real call.
        _validation.check_inputs_shape(sequences_shape)
        if self.cell.built:
            _validation.check_feature_size(
                tuple(sequences_shape), tuple(self.cell.kernel.shape)
            )
        return super().compute_output_shape(sequences_shape, initial_state_shape)

    def call(self, sequences, initial_state=None, mask=None, training=False):
        # Every check runs here, once, before any kernel: the kernels take
        # float sequences of the built feature size, a boolean
        # (batch, timesteps) mask and (batch, units) states.
        sequences = self._standardize_sequences(sequences)
        mask = self._standardize_mask(mask, sequences)
        initial_state = self._standardize_initial_state(initial_state, sequences)
        return super().call(
            sequences, mask=mask, training=training, initial_state=initial_state
        )

    def _standardize_sequences(self, sequences):
        _validation.check_inputs(sequences)
        if self.cell.built:
            _validation.check_feature_size(
                tuple(sequences.shape), tuple(self.cell.kernel.shape)
            )
        if _validation.needs_cast(_validation.dtype_of(sequences)):
            # Keras's loop promotes integer inputs in its first product.
            sequences = ops.cast(sequences, self.compute_dtype)
        return sequences

    def _standardize_mask(self, mask, sequences):
        if isinstance(mask, (list, tuple)) and all(
            m is None or hasattr(m, "shape") for m in mask
        ) and mask:
            # A nested mask (one per input, as Keras passes them): the first
            # is the sequences' mask.
            mask = mask[0]
        if mask is None:
            return None
        _validation.check_mask_type(mask)
        _validation.check_mask(
            tuple(mask.shape), _validation.dtype_of(mask), tuple(sequences.shape)
        )
        return _sequence.standardize_mask(mask, sequences)

    def _standardize_initial_state(self, initial_state, sequences):
        if initial_state is None:
            return None
        states = (
            list(initial_state)
            if isinstance(initial_state, (list, tuple))
            else [initial_state]
        )
        batch = sequences.shape[0]
        _validation.check_initial_state(states, batch, self.units)
        # A (1, units) state is every row's, as Keras broadcasts it.
        return [
            ops.broadcast_to(s, (ops.shape(sequences)[0], self.units))
            if _validation.state_shape(s)[0] == 1 and batch != 1
            else s
            for s in states
        ]

    def plan(self, sequences, mask=None, training=False, device=None):
        """The `fastlstm.planner.Plan` for calling this layer on `sequences`.

        `sequences` and `mask` are checked and brought to the form the
        kernels take, as a call does; only their shapes, dtypes and the
        mask's layout matter.
        """
        _validation.check_inputs(sequences)
        if self.cell.built:
            _validation.check_feature_size(
                tuple(sequences.shape), tuple(self.cell.kernel.shape)
            )
        mask = self._standardize_mask(mask, sequences)
        dtype = _validation.dtype_of(sequences)
        if _validation.needs_cast(dtype) or self.autocast:
            # What the call computes in: Layer.__call__ casts float inputs
            # to the compute dtype, and call() casts the others.
            dtype = self.compute_dtype
        # As the backend holds it: JAX without x64 computes float64 in float32.
        dtype = _validation.dtype_of(ops.zeros((), dtype))
        return self._decide(dtype, mask, training, sequences.shape[0], device)

    def _decide(self, dtype, mask, training, batch, device=None):
        """The planner's decision from the facts of one call, each taken as
        the kernels will see it: the one place that gathers them."""
        module = _kernels.get()
        cell = self.cell
        return planner.decide(
            backend=keras.config.backend(),
            device=device or module.device(),
            activation=planner.activation_name(cell.activation),
            recurrent_activation=planner.activation_name(cell.recurrent_activation),
            use_bias=cell.use_bias,
            unroll=self.unroll,
            dropout=cell.dropout,
            recurrent_dropout=cell.recurrent_dropout,
            implementation=cell.implementation,
            use_cudnn=self.use_cudnn,
            mask=_sequence.mask_layout(mask),
            training=bool(training),
            dtype=dtype,
            native_status=module.native_status(),
            native_dtypes=module.NATIVE_DTYPES,
            batch=batch,
            native_min_batch=module.NATIVE_MIN_BATCH,
        )

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if tree.is_nested(mask):
            mask = mask[0]
        module = _kernels.get()
        plan = self._decide(
            _validation.dtype_of(sequences), mask, training, sequences.shape[0]
        )
        cell = self.cell
        dtype = sequences.dtype
        h0, c0 = (ops.cast(s, dtype) for s in initial_state)
        if in_symbolic_scope():
            # Keras asks for shapes only (e.g. its first fit() on PyTorch
            # traces the model on meta tensors): no recurrence to run.
            return self._symbolic_outputs(sequences, h0, c0)
        kernel = ops.cast(cell.kernel, dtype)
        recurrent_kernel = ops.cast(cell.recurrent_kernel, dtype)
        bias = None if cell.bias is None else ops.cast(cell.bias, dtype)
        dropout_mask = None
        rec_dropout_mask = None
        if training and 0.0 < cell.dropout < 1.0:
            dropout_mask = cell.get_dropout_mask(sequences[:, 0, :])
        if training and 0.0 < cell.recurrent_dropout < 1.0:
            rec_dropout_mask = cell.get_recurrent_dropout_mask(h0)

        x = sequences
        # Keras's cell uses one input-dropout mask for every step and gate, or
        # four per-gate masks (implementation 1, with recurrent dropout).
        gate_dropout_masks = None
        if isinstance(dropout_mask, (list, tuple)):
            gate_dropout_masks = dropout_mask
        elif dropout_mask is not None:
            x = x * ops.expand_dims(dropout_mask, 1)
        if self.go_backwards:
            x = ops.flip(x, axis=1)
            mask = None if mask is None else ops.flip(mask, axis=1)

        def loop():
            extra = {}
            if module.PROJECT_IN_LOOP and gate_dropout_masks is None:
                # The kernel multiplies each step's input inside the loop
                # (faster there than one large product up front).
                xp = x
                extra["input_kernel"] = (kernel, bias)
            else:
                xp = _sequence.project(x, kernel, bias, gate_dropout_masks)
            return module.recurrence(
                xp,
                h0,
                c0,
                recurrent_kernel,
                mask,
                activation=cell.activation,
                recurrent_activation=cell.recurrent_activation,
                zero_output_for_mask=self.zero_output_for_mask,
                return_sequences=self.return_sequences,
                unroll=plan.kernel == "unrolled",
                rec_masks=rec_dropout_mask,
                **extra,
            )

        def fused():
            # The plan's kernel, by name: module.cudnn or module.native.
            return self._fused(
                getattr(module, plan.kernel), x, h0, c0, kernel, recurrent_kernel,
                bias, mask, plan.mask,
            )

        def tensors(kernel_fn):
            # Both branches of a cond must return tensors of one structure.
            last, outputs, h, c = kernel_fn()
            if outputs is None:
                outputs = ops.expand_dims(last, 1)
            return last, outputs, h, c

        # The kernel the plan names, and no other (per-gate input dropout,
        # say, is a fact the planner weighed).
        if plan.kernel not in planner.FUSED_KERNELS:
            last, outputs, h, c = tensors(loop)
        elif plan.mask == _sequence.RUNTIME:
            # A traced mask: the layout is known inside the graph only.
            last, outputs, h, c = ops.cond(
                _sequence.is_contiguous(mask),
                lambda: tensors(fused),
                module.untaken_branch(lambda: tensors(loop)),
            )
        else:
            last, outputs, h, c = tensors(fused)
        return last, outputs, [h, c]

    def _symbolic_outputs(self, sequences, h0, c0):
        last = ops.zeros_like(h0)
        outputs = ops.expand_dims(last, 1)
        if self.return_sequences:
            batch, steps = ops.shape(sequences)[0], ops.shape(sequences)[1]
            outputs = ops.zeros((batch, steps, self.units), sequences.dtype)
        return last, outputs, [h0, c0]

    def _fused(self, run, x, h0, c0, kernel, recurrent_kernel, bias, mask, layout):
        if layout in (_sequence.NO_MASK, _sequence.ALL_VALID):
            y, h, c = run(
                x, h0, c0, kernel, recurrent_kernel, bias, None,
                need_outputs=self.return_sequences,
            )
            return h, (y if self.return_sequences else None), h, c
        starts, lengths = _sequence.valid_span(mask)
        # `layout` describes the mask as given; `mask` is in processing order.
        front_aligned = _sequence.LEFT_PADDED if self.go_backwards else _sequence.RIGHT_PADDED
        if layout != front_aligned:
            x = _sequence.rotate_to_front(x, starts)
        # The final c is observable only as a returned or carried state.
        need_c = self.return_state or self.stateful
        y, h, c = run(
            x, h0, c0, kernel, recurrent_kernel, bias, lengths, need_cell_state=need_c,
            need_outputs=self.return_sequences,
        )
        nonempty = ops.expand_dims(lengths > 0, 1)
        h = ops.where(nonempty, h, h0)
        # A kernel may skip computing a c nobody reads; RNN.call still casts it.
        c = ops.zeros_like(c0) if c is None else ops.where(nonempty, c, c0)
        # The last output is the last valid step's, i.e. the final h, or zeros
        # for an empty row (and for a masked last step with zero outputs).
        keep_last = nonempty
        if self.zero_output_for_mask:
            keep_last = ops.logical_and(keep_last, mask[:, -1:])
        last = ops.where(keep_last, h, ops.zeros_like(h))
        outputs = None
        if self.return_sequences:
            outputs = _sequence.restore_outputs(
                y, starts, lengths, self.zero_output_for_mask
            )
        return last, outputs, h, c

    def get_config(self):
        config = super().get_config()
        config["use_cudnn"] = self.use_cudnn
        return config
