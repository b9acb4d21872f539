# An LSTM forecast of monthly sunspots with fastlstm, end to end.
#
# Run it from the repository root with `make demo` (or `Rscript
# demo/forecast.R`), or from an installed package with
# `demo("forecast", package = "fastlstm")`. It takes about a minute on a
# two-core CPU and stops with an error if any step does not hold.

Sys.setenv(TF_CPP_MIN_LOG_LEVEL = Sys.getenv("TF_CPP_MIN_LOG_LEVEL", "2"))
library(fastlstm)

# Outputs (the .keras file and the plots) go to FASTLSTM_DEMO_OUT if set
# (`make demo` sets it), to demo/output/ when run from the repository, and
# to fastlstm-demo/ in the working directory otherwise (where the user will
# find them; the last lines print the full paths).
out_dir <- Sys.getenv("FASTLSTM_DEMO_OUT")
if (!nzchar(out_dir)) {
  out_dir <- if (file.exists(file.path("demo", "forecast.R"))) {
    file.path("demo", "output")
  } else {
    "fastlstm-demo"
  }
}
dir.create(out_dir, showWarnings = FALSE, recursive = TRUE)

# Same seed, same numbers: R's, Python's, NumPy's and the backend's.
set.seed(1)
keras$utils$set_random_seed(1L)
cat("Keras", keras$`__version__`, "on the", keras$backend$backend(), "backend\n")

## 1. The example of the layer_lstm() reference page, verbatim --------------

input <- random_uniform(c(32, 10, 8))
output <- input |> layer_lstm(4)
shape(output)

lstm <- layer_lstm(units = 4, return_sequences = TRUE, return_state = TRUE)
c(whole_seq_output, final_memory_state, final_carry_state) %<-% lstm(input)
shape(whole_seq_output)
shape(final_memory_state)
shape(final_carry_state)

stopifnot(
  shape(output) == c(32, 4),
  shape(whole_seq_output) == c(32, 10, 4),
  shape(final_memory_state) == c(32, 4),
  shape(final_carry_state) == c(32, 4)
)

## 2. Forecast next month's sunspot number ----------------------------------

# datasets::sunspot.month: the monthly mean relative sunspot number,
# 1749-2013. The last 20% of the months are the test period; the model never
# sees them while it trains, and the scaling uses the training months only.
series <- as.numeric(datasets::sunspot.month)
months <- as.numeric(time(datasets::sunspot.month))
window <- 24 # months of history per forecast
n_test <- round(0.2 * length(series))
split <- length(series) - n_test # the last training month

center <- mean(series[1:split])
spread <- sd(series[1:split])
scaled <- (series - center) / spread

# Windows: x[i, , 1] holds months t - window + 1 .. t; y[i] is month t + 1.
make_windows <- function(targets) {
  x <- t(vapply(targets, function(t) scaled[(t - window):(t - 1)],
                numeric(window)))
  list(x = array(x, c(length(targets), window, 1)), y = scaled[targets])
}
train <- make_windows((window + 1):split)
test <- make_windows((split + 1):length(series))
month_name <- function(i) {
  paste(month.abb[cycle(datasets::sunspot.month)[i]], floor(months[i]))
}
cat(sprintf("%d training windows (%s to %s), %d test windows (%s to %s)\n",
            length(train$y), month_name(window + 1), month_name(split),
            length(test$y), month_name(split + 1), month_name(length(series))))

model <- keras_model_sequential(input_shape = c(window, 1)) |>
  layer_lstm(32) |>
  layer_dense(1)
model |> compile(optimizer = keras$optimizers$Adam(learning_rate = 0.003),
                 loss = "mse")
summary(model)

started <- Sys.time()
history <- model |> fit(train$x, train$y, epochs = 8, batch_size = 32,
                        validation_split = 0.1, verbose = 2)
history
cat(sprintf("Trained in %.1f s\n",
            as.numeric(difftime(Sys.time(), started, units = "secs"))))

# Back to sunspot numbers, then compare with persistence: next month's value
# is this month's.
unscale <- function(z) z * spread + center
observed <- series[(split + 1):length(series)]
forecast <- unscale(predict(model, test$x)[, 1])
persistence <- series[split:(length(series) - 1)]
rmse <- function(a, b) sqrt(mean((a - b)^2))
rmse_lstm <- rmse(forecast, observed)
rmse_persistence <- rmse(persistence, observed)
cat(sprintf("Test RMSE, LSTM:        %6.2f\n", rmse_lstm))
cat(sprintf("Test RMSE, persistence: %6.2f\n", rmse_persistence))
cat(sprintf("The LSTM's error is %.1f%% lower than persistence's.\n",
            100 * (1 - rmse_lstm / rmse_persistence)))
if (!(rmse_lstm < rmse_persistence)) {
  stop("The LSTM does not beat the persistence baseline on the test months.")
}

## 3. Which kernel runs, and why --------------------------------------------

# lstm_plan() returns fastlstm's Plan; its text form lists every requirement
# of each fast kernel and whether it holds.
show_plan <- function(plan) cat(reticulate::py_str(plan), "\n\n")

# On this machine (a CPU, unless it has a GPU):
lstm <- model$layers[[1]]
show_plan(lstm_plan(lstm, test$x))

# On a GPU the same call runs cuDNN:
show_plan(lstm_plan(lstm, test$x, device = "gpu"))

# A left-padded batch (the default of pad_sequences()): the first months of
# half the rows are padding, masked out. Its mask is contiguous, so fastlstm
# keeps cuDNN on a GPU; keras.layers.LSTM needs strictly right-padded input
# for cuDNN and falls back to its loop.
padded <- test$x[1:8, , , drop = FALSE]
padded[1:4, 1:6, ] <- 0
mask <- matrix(TRUE, 8, window)
mask[1:4, 1:6] <- FALSE
gpu_plan <- lstm_plan(lstm, padded, mask = mask, device = "gpu")
show_plan(gpu_plan)
if (gpu_plan$kernel != "cudnn") stop("A left-padded batch should run cuDNN on a GPU.")

# fastlstm is a drop-in keras.layers.LSTM: the trained weights, copied into
# Keras's own layer with get_weights()/set_weights(), give the same
# forecasts to float precision.
reference <- keras$layers$LSTM(32L)
invisible(reference(test$x)) # builds its weights
set_weights(reference, get_weights(lstm))
ours <- as.array(lstm(test$x))
theirs <- as.array(reference(test$x))
difference <- max(abs(ours - theirs))
cat(sprintf("fastlstm vs keras.layers.LSTM, same weights: largest difference %.1e\n",
            difference))
if (!(difference < 1e-5)) stop("fastlstm and keras.layers.LSTM disagree.")

## 4. Save, reload, predict the same ----------------------------------------

path <- file.path(out_dir, "sunspots-lstm.keras")
save_model(model, path, overwrite = TRUE)
restored <- load_model(path)
same <- identical(predict(restored, test$x), predict(model, test$x))
cat("Saved to", path, "- the reloaded model predicts identically:", same, "\n")
if (!same) stop("The reloaded model's predictions differ from the model's.")

## 5. Plot observed against forecast on the test months ---------------------

png_path <- file.path(out_dir, "demo-forecast.png")
png(png_path, width = 1000, height = 480, res = 110)
test_months <- months[(split + 1):length(series)]
par(mar = c(4, 4, 3, 1))
plot(test_months, observed, type = "l", col = "grey60",
     ylim = c(0, 1.3 * max(observed)), xlab = "Year",
     ylab = "Monthly mean sunspot number", las = 1,
     main = sprintf("Next month's sunspot number, held-out %s to %s",
                    month_name(split + 1), month_name(length(series))))
lines(test_months, forecast, col = "firebrick", lwd = 1.5)
legend("topleft", bty = "n", lwd = c(1, 1.5), col = c("grey60", "firebrick"),
       legend = c("Observed",
                  sprintf("fastlstm LSTM forecast: RMSE %.1f (persistence %.1f)",
                          rmse_lstm, rmse_persistence)))
invisible(dev.off())
if (!file.exists(png_path)) stop("The plot was not written.")

# The training history: loss per epoch, training and validation.
history_path <- file.path(out_dir, "demo-history.png")
png(history_path, width = 800, height = 480, res = 110)
plot(history)
invisible(dev.off())

cat("Forecast plot written to", normalizePath(png_path), "\n")
cat("Training history plot written to", normalizePath(history_path), "\n")
