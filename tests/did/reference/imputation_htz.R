## Reference values for the CR2 / HTZ pre-trend test of impact.did.imputation(pretrend_vcov = "CR2"):
## BJS (2024) Test 1, i.e. on the untreated observations only (never-treated units, and treated units
## before adoption), lm(y ~ lead indicators + factor(unit) + factor(period)) and the joint test that the
## leads are zero with clubSandwich::Wald_test(vcov = "CR2", test = "HTZ").
## Run from the repository root:  Rscript tests/did/reference/imputation_htz.R
## Writes imputation_htz.json (and imputation_htz_sim.csv, the simulated panel) next to this script.
##
## Working model matched: clubSandwich's CR2 for an `lm` with the fixed effects as factor dummies (the
## full design), identity working variance; for the weighted fit the weights enter the WLS fit and the
## adjustment (clubSandwich's default for weighted lm).

suppressPackageStartupMessages({
  library(clubSandwich)
  library(jsonlite)
})

script_path <- normalizePath(sub("^--file=", "",
  grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)[1]))
out_dir <- dirname(script_path)
pkgs <- c("clubSandwich", "jsonlite")
versions <- as.list(vapply(pkgs, function(p) as.character(packageVersion(p)), ""))

lead_name <- function(k) paste0("lead", k)

## the untreated observations and the lead indicators e = -1..-leads (treated units only)
leads_sample <- function(d, time, cohort, leads) {
  d <- d[d[[cohort]] == 0 | d[[time]] < d[[cohort]], ]
  e <- ifelse(d[[cohort]] > 0, d[[time]] - d[[cohort]], NA)
  for (k in seq_len(leads)) d[[lead_name(k)]] <- as.integer(!is.na(e) & e == -k)
  d
}

htz <- function(d, outcome, unit, time, cluster, leads, weights = NULL) {
  terms <- lead_name(leads:1)  # e = -leads, ..., -1 (the order impact reports)
  f <- as.formula(paste(outcome, "~", paste(terms, collapse = " + "),
                        "+ factor(", unit, ") + factor(", time, ")"))
  fit <- if (is.null(weights)) lm(f, data = d) else lm(f, data = d, weights = d[[weights]])
  V <- vcovCR(fit, cluster = d[[cluster]], type = "CR2")
  wt <- Wald_test(fit, constraints = constrain_zero(terms), vcov = "CR2", cluster = d[[cluster]], test = "HTZ")
  list(n = nobs(fit), n_clusters = length(unique(d[[cluster]])), event_times = -(leads:1),
       estimate = unname(coef(fit)[terms]),
       se = unname(sqrt(diag(as.matrix(V)))[match(terms, names(coef(fit)))]),
       HTZ = list(F = wt$Fstat, delta = wt$delta, df_num = wt$df_num, df_denom = wt$df_denom, p_val = wt$p_val))
}

results <- list()
notes <- list()

## ---- (a) mpdta: 500 counties, clusters = counties --------------------------------------------
p <- file.path("data", "mpdta.csv")
md <- read.csv(p)
data_files <- list(mpdta = list(path_used = p, md5 = unname(tools::md5sum(p))))
results$mpdta <- htz(leads_sample(md, "year", "first.treat", 3), "lemp", "countyreal", "year", "countyreal", 3)
notes$mpdta <- paste0(
  "data/mpdta.csv (R did), untreated observations only (first.treat == 0 or year < first.treat), ",
  "lead1..lead3 = 1{year - first.treat == -k}; lm(lemp ~ lead3 + lead2 + lead1 + factor(countyreal) + ",
  "factor(year)); Wald_test(fit, constrain_zero(c('lead3','lead2','lead1')), vcov = 'CR2', ",
  "cluster = countyreal, test = 'HTZ'). impact: imputation(mpdta, outcome='lemp', unit='countyreal', ",
  "time='year', cohort='first.treat', pretrend_leads=3, pretrend_vcov='CR2').")

## ---- (b) simulated: few treated regions, unbalanced, regions as clusters, weights --------------
set.seed(20261129)
region_sizes <- c(3, 2, 4, 3, 5, 2, 3, 4, 2, 3, 4, 3)  # units per region (cluster)
region <- rep(seq_along(region_sizes), region_sizes)
n_units <- length(region)
sim <- expand.grid(period = 1:10, unit = seq_len(n_units))
sim$region <- region[sim$unit]
sim <- sim[runif(nrow(sim)) > 0.1, ]  # unbalanced: about 10% of unit-periods missing
cohort_of_region <- rep(0, length(region_sizes))
cohort_of_region[c(2, 5, 9)] <- c(6, 6, 8)  # 3 treated regions of 12, staggered
sim$cohort <- cohort_of_region[sim$region]
unit_fe <- rnorm(n_units)
sim$y <- round(unit_fe[sim$unit] + 0.2 * sim$period + 0.1 * (sim$cohort > 0) * sim$period +
  ifelse(sim$cohort > 0 & sim$period >= sim$cohort, 1, 0) +
  rnorm(nrow(sim), sd = 0.5 + 0.1 * sim$region) + rnorm(length(region_sizes))[sim$region], 6)
sim$w <- 1 + (sim$unit %% 3)  # analytic weights, constant within unit
write.csv(sim[, c("unit", "region", "period", "cohort", "w", "y")], file.path(out_dir, "imputation_htz_sim.csv"),
          row.names = FALSE)
ds <- leads_sample(sim, "period", "cohort", 3)
results$simulated <- list(unweighted = htz(ds, "y", "unit", "period", "region", 3),
                          weighted = htz(ds, "y", "unit", "period", "region", 3, weights = "w"))
notes$simulated <- paste0(
  "Simulated here (set.seed(20261129)), written to imputation_htz_sim.csv (y rounded to 6 decimals): ",
  "38 units in 12 regions of 2-5 units, periods 1-10, about 10% of unit-periods dropped; regions 2, 5, 9 ",
  "adopt in periods 6, 6, 8; treated regions trend up by 0.1 a period (a pre-trend). Untreated ",
  "observations only; lm(y ~ lead3 + lead2 + lead1 + factor(unit) + factor(period) [, weights = w]); ",
  "Wald_test(..., vcov = 'CR2', cluster = region, test = 'HTZ'). impact: imputation(sim, outcome='y', ",
  "unit='unit', time='period', cohort='cohort', cluster='region' [, weights='w'], pretrend_vcov='CR2').")

out <- list(
  source = paste(readLines(script_path), collapse = "\n"),
  r_version = R.version.string,
  package_versions = versions,
  data_files = data_files,
  notes = notes,
  results = results)
write_json(out, file.path(out_dir, "imputation_htz.json"), digits = NA, auto_unbox = TRUE, pretty = TRUE,
           na = "null")
cat("wrote", file.path(out_dir, "imputation_htz.json"), "\n")
