# Reference delta-method standard errors of ratios, from car::deltaMethod (an implementation independent of
# impact's). Run: Rscript delta_ratio.R  (writes delta_ratio.json next to this file)
library(car)
cases <- list(
  list(a = 736.7, b = 1235, va = 131.8^2, vb = 0, cov = 0),
  list(a = 0.4, b = 2.0, va = 0.16, vb = 0.64, cov = 0),
  list(a = 55.6, b = 736.7, va = 0, vb = 131.8^2, cov = 0),
  list(a = 3.0, b = 1.5, va = 0.5, vb = 0.2, cov = 0.1)
)
out <- lapply(cases, function(k) {
  est <- c(a = k$a, b = k$b)
  V <- matrix(c(k$va, k$cov, k$cov, k$vb), 2, 2, dimnames = list(c("a", "b"), c("a", "b")))
  d <- deltaMethod(est, "a / b", vcov. = V)
  c(k, estimate = d$Estimate, se = d$SE)
})
writeLines(jsonlite::toJSON(list(
  source = paste0("car ", packageVersion("car"), " deltaMethod(c(a=, b=), \"a / b\", vcov. = V), R ", getRversion()),
  cases = out), auto_unbox = TRUE, digits = 15), "delta_ratio.json")
