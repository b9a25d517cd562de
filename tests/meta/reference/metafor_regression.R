## Reference values from R metafor for meta-regression, the permutation test of moderators, subgroup
## analysis and the Paule-Mandel tau^2 (issue 14 item 2, issue 17 item 2).
## Run from the repository root:  Rscript tests/meta/reference/metafor_regression.R
## Writes tests/meta/reference/metafor_regression.json next to this script.

suppressPackageStartupMessages({
  library(metafor)   # also attaches metadat (dat.hackshaw1998)
  library(jsonlite)
})

script_path <- normalizePath(sub("^--file=", "",
  grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)[1]))
out_dir <- dirname(script_path)
pkgs <- c("metafor", "metadat", "jsonlite")
versions <- as.list(vapply(pkgs, function(p) as.character(packageVersion(p)), ""))

d <- read.csv("data/bcg.csv", stringsAsFactors = FALSE)
dat <- escalc(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = d)

num <- function(x) if (is.null(x)) NA else as.numeric(x)
fit_values <- function(fit) {
  list(
    coefficients = rownames(fit$beta),
    estimate = as.numeric(fit$beta), se = as.numeric(fit$se), statistic = as.numeric(fit$zval),
    pval = as.numeric(fit$pval), ci_lb = as.numeric(fit$ci.lb), ci_ub = as.numeric(fit$ci.ub),
    tau2 = fit$tau2, se_tau2 = num(fit$se.tau2), I2 = fit$I2, H2 = fit$H2, R2 = num(fit$R2),
    QE = fit$QE, QEp = fit$QEp, QM = fit$QM, QMdf = as.numeric(fit$QMdf), QMp = fit$QMp,
    k = fit$k, p = fit$p, ddf = num(fit$ddf), s2w = fit$s2w)
}

## ---- meta-regression: rma(yi, vi, mods = ~ ..., method = M, test = T) ---------------------------
models <- list(
  ablat_year = ~ ablat + year,
  ablat_alloc = ~ ablat + factor(alloc),   # treatment coding, reference level "alternate"
  alloc = ~ factor(alloc))
regression <- list()
for (name in names(models)) {
  regression[[name]] <- list()
  for (m in c("REML", "DL", "PM", "FE")) {
    regression[[name]][[m]] <- list()
    for (t in c("z", "knha")) {
      fit <- suppressWarnings(rma(yi, vi, mods = models[[name]], data = dat, method = m, test = t))
      regression[[name]][[m]][[t]] <- fit_values(fit)
    }
  }
}

## ---- permutation test of moderators: permutest(fit, exact = TRUE) on the first 7 trials --------
## 7! = 5040 permutations of the rows of the model matrix: the exact permutation distribution.
small <- dat[1:7, ]
permutation <- list()
for (m in c("REML", "DL")) {
  for (t in c("z", "knha")) {
    fit <- rma(yi, vi, mods = ~ ablat, data = small, method = m, test = t)
    pt <- permutest(fit, exact = TRUE, progbar = FALSE)
    permutation[[paste(m, t, sep = "_")]] <- list(
      pval = as.numeric(pt$pval), QMp = pt$QMp, QM = fit$QM, n_permutations = nrow(pt$zval.perm))
  }
}
fit <- rma(yi, vi, mods = ~ factor(alloc), data = dat[c(1:5, 7:8, 10:12), ], method = "REML")
pt <- permutest(fit, exact = TRUE, progbar = FALSE)
permutation[["REML_z_alloc"]] <- list(
  rows = c(1:5, 7:8, 10:12), pval = as.numeric(pt$pval), QMp = pt$QMp, QM = fit$QM, n_permutations = nrow(pt$zval.perm))

## ---- subgroup analysis with a separate tau^2 per subgroup (metafor's documented recipe) ---------
subgroups <- list()
for (m in c("REML", "DL")) {
  fits <- lapply(sort(unique(dat$alloc)), function(g) rma(yi, vi, data = dat, subset = alloc == g, method = m))
  est <- sapply(fits, function(f) as.numeric(f$beta)); se <- sapply(fits, function(f) f$se)
  between <- rma(est, sei = se, method = "FE")
  subgroups[[m]] <- list(groups = sort(unique(dat$alloc)), estimate = est, se = se,
    tau2 = sapply(fits, function(f) f$tau2), k = sapply(fits, function(f) f$k),
    Q_between = between$QE, Q_between_df = between$k - 1, Q_between_p = between$QEp)
}

## ---- Paule-Mandel tau^2 on dat.hackshaw1998 (issue 17 item 2) ----------------------------------
h <- dat.hackshaw1998
pm_default <- rma(yi, vi, data = h, method = "PM")
generalised_q <- function(tau2) { w <- 1 / (h$vi + tau2); mu <- sum(w * h$yi) / sum(w); sum(w * (h$yi - mu)^2) }
exact_root <- uniroot(function(t) generalised_q(t) - (h$k <- nrow(h)) + 1, c(0, 1), tol = 1e-15, maxiter = 1000)$root
pm_fine <- rma(yi, vi, data = h, method = "PM", control = list(tol = 1e-15, maxiter = 1000))
hackshaw <- list(yi = h$yi, vi = h$vi, study = h$study,
  metafor_default = fit_values(pm_default), tau2_exact_uniroot = exact_root,
  metafor_tol_1e15 = fit_values(pm_fine))

notes <- list(
  regression = paste0("results.regression.<model>.<METHOD>.<z|knha>: rma(yi, vi, mods = <model>, data = dat, method = METHOD, ",
    "test = T) on escalc(measure = 'RR', ai = tpos, bi = tneg, ci = cpos, di = cneg, data = bcg). Models: ",
    "ablat_year = ~ ablat + year; ablat_alloc = ~ ablat + factor(alloc); alloc = ~ factor(alloc). statistic is ",
    "fit$zval (a t statistic under knha). QM is a chi-square on QMdf[1] df, or under knha an F on (QMdf[1], QMdf[2]). ",
    "R2 = max(0, 100 (tau2_RE - tau2) / tau2_RE) with tau2_RE of the intercept-only model fitted with the same method ",
    "(null for FE)."),
  permutation = paste0("permutest(fit, exact = TRUE) on rma(yi, vi, mods = ~ ablat, data = dat[1:7, ], method, test); ",
    "REML_z_alloc: rma(yi, vi, mods = ~ factor(alloc), data = dat[rows, ], method = 'REML') (unique permutations)."),
  subgroups = paste0("per alloc group: rma(yi, vi, subset = alloc == g, method); Q between = QE of ",
    "rma(estimates, sei = ses, method = 'FE') over the subgroup estimates (groups sorted)."),
  hackshaw = paste0("dat.hackshaw1998 (metadat ", versions$metadat, "): rma(yi, vi, method = 'PM') with metafor's default ",
    "uniroot tol = .Machine$double.eps^0.25; tau2_exact_uniroot: uniroot of Q(tau2) - (k - 1) with tol = 1e-15."))

out <- list(source = paste(readLines(script_path), collapse = "\n"), r_version = R.version.string,
  package_versions = versions, notes = notes,
  results = list(regression = regression, permutation = permutation, subgroups = subgroups, hackshaw = hackshaw))
write_json(out, file.path(out_dir, "metafor_regression.json"), digits = NA, auto_unbox = TRUE, pretty = TRUE, na = "null")
cat("wrote", file.path(out_dir, "metafor_regression.json"), "\n")
