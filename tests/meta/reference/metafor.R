## Reference values from R metafor for the BCG vaccine meta-analysis (log risk ratios).
## Run from the repository root:  Rscript tests/meta/reference/metafor.R
## Writes tests/meta/reference/metafor.json next to this script.

suppressPackageStartupMessages({
  library(metafor)
  library(jsonlite)
})

## ---- locate this script, the data, and record versions --------------------------------
script_path <- normalizePath(sub("^--file=", "",
  grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)[1]))
out_dir <- dirname(script_path)
data_path <- function(f) {
  # data/<file> in the repo root first (bundled copy); else the shared datasets folder
  # (../shared/datasets from a checkout in /work, ../../shared/datasets from a worktree in /work/wt).
  cands <- c(file.path("data", f), file.path("..", "shared", "datasets", f),
             file.path("..", "..", "shared", "datasets", f))
  hit <- cands[file.exists(cands)]
  if (!length(hit)) stop("dataset not found: ", f)
  hit[1]
}
pkgs <- c("metafor", "jsonlite")
versions <- as.list(vapply(pkgs, function(p) as.character(packageVersion(p)), ""))
p_csv <- data_path("bcg.csv")
data_files <- list(bcg = list(path_used = p_csv, md5 = unname(tools::md5sum(p_csv))))

d <- read.csv(p_csv, stringsAsFactors = FALSE)
dat <- escalc(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = d)

results <- list(
  k = nrow(dat),
  studies = list(trial = dat$trial, author = dat$author, year = dat$year,
                 yi = as.numeric(dat$yi), vi = as.numeric(dat$vi)))

one_fit <- function(method, test) {
  fit <- suppressWarnings(rma(yi, vi, data = dat, method = method, test = test))
  pr <- predict(fit)
  r <- list(method = fit$method, test = fit$test,
            estimate = as.numeric(fit$b), se = fit$se,
            pval = fit$pval, ci_lb = fit$ci.lb, ci_ub = fit$ci.ub,
            tau2 = fit$tau2, se_tau2 = if (is.null(fit$se.tau2)) NA else fit$se.tau2,
            I2 = fit$I2, H2 = fit$H2, QE = fit$QE, QEp = fit$QEp, k = fit$k,
            pred = as.numeric(pr$pred), pred_se = as.numeric(pr$se),
            pi_lb = if (is.null(pr$pi.lb)) NA else as.numeric(pr$pi.lb),
            pi_ub = if (is.null(pr$pi.ub)) NA else as.numeric(pr$pi.ub))
  if (test == "z") {
    r$zval <- fit$zval
  } else {
    r$tval <- fit$zval          # metafor stores the t statistic in $zval when test = "knha"
    r$df <- fit$ddf
    r$s2w <- fit$s2w            # Knapp-Hartung scaling factor (not truncated at 1 in this version)
  }
  r
}
results$rma <- list()
for (m in c("REML", "DL", "PM", "FE", "EE")) {
  results$rma[[m]] <- list(z = one_fit(m, "z"), knha = one_fit(m, "knha"))
}

notes <- list(
  data = paste0(
    "bcg.csv = metafor::dat.bcg (13 trials); columns tpos, tneg, cpos, cneg are the 2x2 counts, used as ",
    "escalc(measure = 'RR', ai = tpos, bi = tneg, ci = cpos, di = cneg): yi = log((tpos/(tpos+tneg)) / ",
    "(cpos/(cpos+cneg))), vi = 1/tpos - 1/(tpos+tneg) + 1/cpos - 1/(cpos+cneg). No zero cells, no NAs, k = 13. ",
    "results.studies holds yi and vi per trial in file order."),
  models = paste0(
    "results.rma.<METHOD>.<z|knha> from rma(yi, vi, data = dat, method = METHOD, test = 'z' | 'knha') for ",
    "METHOD in REML, DL, PM, FE, EE; pred/pred_se/pi_lb/pi_ub from predict(fit). ",
    "In metafor ", versions$metafor, " 'FE' and 'EE' give identical numbers (EE is the newer label for the ",
    "equal-effects model; FE kept for back-compatibility); both are stored. For FE/EE tau2 = 0, se_tau2 is null ",
    "and predict() returns no prediction interval, so pi_lb/pi_ub are null (the PI equals the CI there). ",
    "se_tau2 is metafor's standard error of tau2 (given for REML, DL and PM). ",
    "For test = 'knha' metafor warns that KH is not meant for FE/EE models; values are stored anyway. ",
    "Prediction interval: pred +/- q * sqrt(tau2 + se^2), q = normal quantile for test = 'z' and t(k-1) quantile ",
    "for knha (se being the knha se there). KH: se = sqrt(s2w) * (z-test se), t with df = k - 1, s2w not ",
    "truncated at 1 (s2w = weighted residual SS / (k-1) with RE weights 1/(vi + tau2)). I2 and H2 for FE/EE are computed from QE ",
    "(I2 = 100*(QE - (k-1))/QE, H2 = QE/(k-1)); for RE methods metafor uses the tau2-based definitions ",
    "(I2 = 100*tau2/(tau2 + s2), s2 = typical within-study variance)."))

out <- list(
  source = paste(readLines(script_path), collapse = "\n"),
  r_version = R.version.string,
  package_versions = versions,
  data_files = data_files,
  notes = notes,
  results = results)
write_json(out, file.path(out_dir, "metafor.json"),
           digits = NA, auto_unbox = TRUE, pretty = TRUE, na = "null")
cat("wrote", file.path(out_dir, "metafor.json"), "\n")
