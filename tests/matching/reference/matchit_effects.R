## Reference SEs for effect() after exact and coarsened exact matching, following MatchIt's vignette
## "Estimating Effects After Matching" (Greifer, MatchIt >= 4.0): fit lm(Y ~ A, weights) on the
## matched data and use a heteroskedasticity-robust SE, vcov = "HC3", for stratum designs (exact,
## CEM, subclassification); cluster-robust by subclass only for pair matching. Subclassification:
## matchit(f, method = "subclass") with its default 6 subclasses on the logit propensity score.
## marginaleffects is not installed here, so its avg_comparisons() is computed by hand:
##  * without covariates the contrast is the coefficient on treat and its SE is
##    sqrt(sandwich::vcovHC(fit, type = "HC3")["treat", "treat"]);
##  * with covariates (the vignette's fit lm(Y ~ A * (X), weights)) the g-computation contrast is
##    the weighted mean over the target units (treated for the ATT, all matched for the ATE) of
##    predict(A = 1) - predict(A = 0), with the delta-method SE from the same HC3 covariance
##    (what avg_comparisons(fit, variables = "treat", vcov = "HC3", newdata = ..., wts = "weights") does).
## Run from the repository root:  Rscript tests/matching/reference/matchit_effects.R
## Writes matchit_effects.json next to this script.

suppressPackageStartupMessages({
  library(MatchIt)
  library(sandwich)
  library(jsonlite)
})

script_path <- normalizePath(sub("^--file=", "",
  grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)[1]))
out_dir <- dirname(script_path)
p_csv <- if (file.exists("data/lalonde.csv")) "data/lalonde.csv" else stop("run from the repository root")
d <- read.csv(p_csv, stringsAsFactors = FALSE)
d$race <- factor(d$race, levels = c("black", "hispan", "white"))
versions <- list(R = R.version.string, MatchIt = as.character(packageVersion("MatchIt")),
                 sandwich = as.character(packageVersion("sandwich")),
                 jsonlite = as.character(packageVersion("jsonlite")))

f_all <- treat ~ age + educ + race + married + nodegree + re74 + re75
designs <- list(
  exact = list(formula = treat ~ race + married + nodegree, method = "exact", cutpoints = NULL),
  cem_default = list(formula = f_all, method = "cem", cutpoints = NULL),
  cem_user = list(formula = f_all, method = "cem",
                  cutpoints = list(age = 4, educ = c(0, 9, 12, 16), re74 = 3)),
  subclass = list(formula = f_all, method = "subclass", cutpoints = NULL))
outcome_covs <- c("age", "educ", "re74", "re75")

gcomp <- function(fit, md, target) {
  ## avg_comparisons by hand: weighted mean of predict(treat = 1) - predict(treat = 0) over target rows
  nd <- md[target, ]
  X1 <- model.matrix(delete.response(terms(fit)), transform(nd, treat = 1))
  X0 <- model.matrix(delete.response(terms(fit)), transform(nd, treat = 0))
  g <- colSums((X1 - X0) * nd$weights) / sum(nd$weights)
  V <- sandwich::vcovHC(fit, type = "HC3")
  list(estimate = sum(g * coef(fit)), se_HC3 = sqrt(drop(t(g) %*% V %*% g)))
}

results <- list()
for (name in names(designs)) {
  spec <- designs[[name]]
  for (estimand in if (spec$method == "subclass") c("ATT", "ATE", "ATC") else c("ATT", "ATE")) {
    args <- list(spec$formula, data = d, method = spec$method, estimand = estimand)
    if (!is.null(spec$cutpoints)) args$cutpoints <- spec$cutpoints
    m <- do.call(matchit, args)
    md <- match.data(m)
    fit0 <- lm(re78 ~ treat, data = md, weights = weights)
    fit1 <- lm(as.formula(paste("re78 ~ treat * (", paste(outcome_covs, collapse = " + "), ")")),
               data = md, weights = weights)
    target <- switch(estimand, ATT = md$treat == 1, ATC = md$treat == 0, rep(TRUE, nrow(md)))
    results[[paste(name, estimand, sep = "_")]] <- list(
      call = paste0("matchit(", deparse(spec$formula), ", method = '", spec$method, "', estimand = '", estimand, "'",
                    if (!is.null(spec$cutpoints)) ", cutpoints = list(age = 4, educ = c(0, 9, 12, 16), re74 = 3)" else "", ")"),
      n_matched = nrow(md), n_subclasses = length(unique(md$subclass)),
      estimate = unname(coef(fit0)["treat"]),
      se_HC3 = sqrt(sandwich::vcovHC(fit0, type = "HC3")["treat", "treat"]),
      se_vcovCL_subclass_HC1 = sqrt(sandwich::vcovCL(fit0, cluster = ~subclass, type = "HC1")["treat", "treat"]),
      interacted = c(list(formula = paste("re78 ~ treat * (", paste(outcome_covs, collapse = " + "), ")")),
                     gcomp(fit1, md, target)))
  }
}

out <- list(source = paste(readLines(script_path), collapse = "\n"), versions = versions,
            data = list(path = p_csv, md5 = unname(tools::md5sum(p_csv))), results = results)
write_json(out, file.path(out_dir, "matchit_effects.json"), digits = NA, auto_unbox = TRUE, pretty = TRUE)
cat("wrote", file.path(out_dir, "matchit_effects.json"), "\n")
