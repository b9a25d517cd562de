## Reference values for the CR2 Wald tests (HTZ, HTA, Naive-F) of clubSandwich::Wald_test.
## Run from the repository root:  Rscript tests/inference/reference/htz.R
## Writes tests/inference/reference/htz.json (and htz_sim.csv, the simulated panel) next to this script.
##
## Working model matched: clubSandwich's CR2 for an `lm` with the fixed effects as factor dummies
## (the full design), identity working variance (Phi = I; for the weighted fit the weights enter
## the WLS bread and the adjustment, `inverse_var = FALSE`, clubSandwich's default for weighted lm).

suppressPackageStartupMessages({
  library(clubSandwich)
  library(jsonlite)
})

script_path <- normalizePath(sub("^--file=", "",
  grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)[1]))
out_dir <- dirname(script_path)
data_path <- function(f) {
  cands <- c(file.path("data", f), file.path("..", "shared", "datasets", f),
             file.path("..", "..", "shared", "datasets", f))
  hit <- cands[file.exists(cands)]
  if (!length(hit)) stop("dataset not found: ", f)
  hit[1]
}
pkgs <- c("clubSandwich", "jsonlite")
versions <- as.list(vapply(pkgs, function(p) as.character(packageVersion(p)), ""))
data_files <- list()

tests <- c("HTZ", "HTA", "Naive-F", "chi-sq")
wald <- function(fit, terms, cluster) {
  wt <- Wald_test(fit, constraints = constrain_zero(terms), vcov = "CR2", cluster = cluster, test = tests)
  out <- list(terms = terms)
  for (i in seq_len(nrow(wt))) {
    out[[wt$test[i]]] <- list(F = wt$Fstat[i], delta = wt$delta[i], df_num = wt$df_num[i],
                              df_denom = wt$df_denom[i], p_val = wt$p_val[i])
  }
  out
}
coefs <- function(fit, terms, cluster) {
  V <- vcovCR(fit, cluster = cluster, type = "CR2")
  list(estimate = unname(coef(fit)[terms]), se = unname(sqrt(diag(as.matrix(V)))[match(terms, names(coef(fit)))]))
}

results <- list()
notes <- list()

## ---- (a) mpdta: event-study leads and lags, unit + year dummies, clustered by county ---------
p <- data_path("mpdta.csv")
data_files$mpdta <- list(path_used = p, md5 = unname(tools::md5sum(p)))
md <- read.csv(p)
md$e <- ifelse(md$first.treat > 0, md$year - md$first.treat, NA)
ev <- c(-4, -3, -2, 0, 1, 2, 3)
ev_name <- function(e) ifelse(e < 0, paste0("lead", -e), paste0("lag", e))
for (e in ev) md[[ev_name(e)]] <- as.integer(!is.na(md$e) & md$e == e)
fa <- as.formula(paste("lemp ~", paste(ev_name(ev), collapse = " + "), "+ factor(countyreal) + factor(year)"))
fit_a <- lm(fa, data = md)
leads_a <- ev_name(c(-4, -3, -2))
lags_a <- ev_name(c(0, 1, 2, 3))
results$mpdta <- list(
  n = nobs(fit_a), n_clusters = length(unique(md$countyreal)), event_times = ev, terms = ev_name(ev),
  coefficients = coefs(fit_a, ev_name(ev), md$countyreal),
  leads = wald(fit_a, leads_a, md$countyreal),
  lags = wald(fit_a, lags_a, md$countyreal))
notes$mpdta <- paste0(
  "mpdta.csv (did package), 2500 rows, 500 counties, 2003-2007. e = year - first.treat for treated ",
  "counties; indicators for e in {-4,-3,-2,0,1,2,3} (reference e = -1; never-treated all zero). ",
  "lm(lemp ~ lead4 + lead3 + lead2 + lag0 + lag1 + lag2 + lag3 + factor(countyreal) + factor(year)); ",
  "Wald_test(fit, constrain_zero(terms), vcov = 'CR2', cluster = countyreal, ",
  "test = c('HTZ','HTA','Naive-F','chi-sq')) for the leads (pre-trend test) and for the lags.")

## ---- (b) simulated: unequal clusters, unbalanced panel, unit + period effects, a covariate ----
set.seed(20181)
region_sizes <- c(1, 2, 2, 3, 3, 4, 5, 6, 8, 1, 2, 3, 4, 7, 9)  # units per region (cluster)
region <- rep(seq_along(region_sizes), region_sizes)
n_units <- length(region)
periods <- 1:8
sim <- expand.grid(period = periods, unit = seq_len(n_units))
sim$region <- region[sim$unit]
keep <- runif(nrow(sim)) > 0.12  # unbalanced: about 12% of unit-periods missing
sim <- sim[keep, ]
cohort_of_region <- rep(0, length(region_sizes))
cohort_of_region[c(2, 5, 9, 13)] <- c(4, 4, 6, 7)  # treatment assigned by region, staggered
sim$cohort <- cohort_of_region[sim$region]
sim$x <- round(rnorm(nrow(sim)), 6)
region_sd <- 0.5 + 0.1 * seq_along(region_sizes)
unit_fe <- rnorm(n_units)
sim$y <- round(unit_fe[sim$unit] + 0.3 * sim$period + 0.5 * sim$x +
  ifelse(sim$cohort > 0 & sim$period >= sim$cohort, 1, 0) +
  rnorm(nrow(sim), sd = region_sd[sim$region]) + rnorm(length(region_sizes))[sim$region], 6)
sim$w <- 1 + (sim$unit %% 3)  # analytic weights, constant within unit
sim$e <- ifelse(sim$cohort > 0, sim$period - sim$cohort, NA)
ev_b <- c(-3, -2, 0, 1, 2)
for (e in ev_b) sim[[ev_name(e)]] <- as.integer(!is.na(sim$e) & sim$e == e)
write.csv(sim[, c("unit", "region", "period", "cohort", "x", "w", "y")],
          file.path(out_dir, "htz_sim.csv"), row.names = FALSE)
fb <- as.formula(paste("y ~", paste(ev_name(ev_b), collapse = " + "), "+ x + factor(unit) + factor(period)"))
fit_b <- lm(fb, data = sim)
fit_bw <- lm(fb, data = sim, weights = w)
leads_b <- ev_name(c(-3, -2))
lags_b <- ev_name(c(0, 1, 2))
results$simulated <- list(
  n = nobs(fit_b), n_clusters = length(unique(sim$region)), event_times = ev_b, terms = c(ev_name(ev_b), "x"),
  unweighted = list(
    coefficients = coefs(fit_b, c(ev_name(ev_b), "x"), sim$region),
    leads = wald(fit_b, leads_b, sim$region),
    lags = wald(fit_b, lags_b, sim$region),
    lags_and_x = wald(fit_b, c(lags_b, "x"), sim$region)),
  weighted = list(
    coefficients = coefs(fit_bw, c(ev_name(ev_b), "x"), sim$region),
    leads = wald(fit_bw, leads_b, sim$region),
    lags_and_x = wald(fit_bw, c(lags_b, "x"), sim$region)))
notes$simulated <- paste0(
  "Simulated in this script (set.seed(20181)); the data are written to htz_sim.csv (y and x rounded to ",
  "6 decimals before fitting). 47 units in 15 regions of unequal size (1 to 9 units), periods 1-8, ",
  "about 12% of unit-periods dropped at random (unbalanced). Regions 2, 5, 9 and 13 adopt in periods ",
  "4, 4, 6, 7. Event-time indicators e in {-3,-2,0,1,2} (reference -1; other event times share the ",
  "reference), covariate x. lm(y ~ lead3 + lead2 + lag0 + lag1 + lag2 + x + factor(unit) + factor(period) ",
  "[, weights = w]); clusters = region (unit effects nested in clusters, period effects not). ",
  "Wald_test(..., vcov = 'CR2', cluster = region, test = c('HTZ','HTA','Naive-F','chi-sq')).")

out <- list(
  source = paste(readLines(script_path), collapse = "\n"),
  r_version = R.version.string,
  package_versions = versions,
  data_files = data_files,
  notes = notes,
  results = results)
write_json(out, file.path(out_dir, "htz.json"), digits = NA, auto_unbox = TRUE, pretty = TRUE, na = "null")
cat("wrote", file.path(out_dir, "htz.json"), "\n")
