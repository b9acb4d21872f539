library(testthat)
library(fastlstm)

test_check("fastlstm")
