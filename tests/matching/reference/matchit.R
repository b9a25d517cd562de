## Reference values from R MatchIt (propensity scores, exact matching, CEM, balance tables).
## Run from the repository root:  Rscript tests/matching/reference/matchit.R
## Writes matchit.json and matchit_units.csv (per-unit vectors) next to this script.
## Nearest-neighbour matching is deliberately NOT used: it is broken in Debian's MatchIt 4.5.x.

suppressPackageStartupMessages({
  library(MatchIt)
  library(sandwich)
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
pkgs <- c("MatchIt", "sandwich", "jsonlite")
versions <- as.list(vapply(pkgs, function(p) as.character(packageVersion(p)), ""))
p_csv <- data_path("lalonde.csv")
data_files <- list(lalonde = list(path_used = p_csv, md5 = unname(tools::md5sum(p_csv))))

d <- read.csv(p_csv, stringsAsFactors = FALSE)
d$race <- factor(d$race, levels = c("black", "hispan", "white"))
rownames(d) <- NULL
f <- treat ~ age + educ + race + married + nodegree + re74 + re75

notes <- list()
results <- list(n = nrow(d), n_treated = sum(d$treat == 1), n_control = sum(d$treat == 0))

## ---- propensity scores --------------------------------------------------------------------
g_logit <- glm(f, data = d, family = binomial(link = "logit"))
g_probit <- glm(f, data = d, family = binomial(link = "probit"))
m_logit <- matchit(f, data = d, method = NULL, distance = "glm", link = "logit")
m_probit <- matchit(f, data = d, method = NULL, distance = "glm", link = "probit")
results$propensity <- list(
  logit = list(coefficients = as.list(coef(g_logit)), deviance = deviance(g_logit),
               max_abs_diff_vs_matchit_distance = max(abs(fitted(g_logit) - m_logit$distance))),
  probit = list(coefficients = as.list(coef(g_probit)), deviance = deviance(g_probit),
                max_abs_diff_vs_matchit_distance = max(abs(fitted(g_probit) - m_probit$distance))),
  per_unit_csv = "matchit_units.csv (columns ps_logit, ps_probit)")

## ---- balance table helper ---------------------------------------------------------------
bal_rows <- function(M) {
  M <- as.data.frame(M)
  out <- list()
  for (r in rownames(M)) {
    out[[r]] <- list(mean_treated = M[r, "Means Treated"], mean_control = M[r, "Means Control"],
                     std_mean_diff = M[r, "Std. Mean Diff."], var_ratio = M[r, "Var. Ratio"],
                     ecdf_mean = M[r, "eCDF Mean"], ecdf_max = M[r, "eCDF Max"],
                     std_pair_dist = if ("Std. Pair Dist." %in% names(M)) M[r, "Std. Pair Dist."] else NA)
  }
  out
}
nn_tab <- function(s) {
  nn <- s$nn
  setNames(lapply(rownames(nn), function(r) list(control = nn[r, "Control"], treated = nn[r, "Treated"])),
           rownames(nn))
}

## balance BEFORE matching on the full formula (incl. the logit propensity score as 'distance')
s_before <- summary(m_logit, un = TRUE)
results$balance_before <- bal_rows(s_before$sum.all)

## ---- effect estimate on matched data ----------------------------------------------------------
att_of <- function(m) {
  md <- match.data(m)                          # matched units only, with weights and subclass
  fit <- lm(re78 ~ treat, data = md, weights = weights)
  V_cl <- sandwich::vcovCL(fit, cluster = ~subclass, type = "HC1")
  V_hc3 <- sandwich::vcovHC(fit, type = "HC3")
  list(estimate = unname(coef(fit)["treat"]),
       se_vcovCL_subclass_HC1 = sqrt(V_cl["treat", "treat"]),
       se_vcovHC_HC3 = sqrt(V_hc3["treat", "treat"]),
       se_iid = sqrt(vcov(fit)["treat", "treat"]),
       n_matched_rows = nrow(md), n_subclasses = length(unique(md$subclass)))
}
addl <- ~ age + educ + re74 + re75   # covariates not used by the exact match, for after-balance
match_summary <- function(m, addlvariables = NULL) {
  s <- summary(m, un = TRUE, addlvariables = addlvariables, data = d)
  list(n = nn_tab(s),
       n_matched = list(control = sum(m$weights[d$treat == 0] > 0),
                        treated = sum(m$weights[d$treat == 1] > 0)),
       n_subclasses = length(unique(na.omit(m$subclass))),
       att = att_of(m),
       balance_before = bal_rows(s$sum.all),
       balance_after = bal_rows(s$sum.matched))
}

## ---- exact matching -----------------------------------------------------------------------
m_exact <- matchit(treat ~ race + married + nodegree, data = d, method = "exact")
results$exact <- c(list(formula = "treat ~ race + married + nodegree",
                        addlvariables = "~ age + educ + re74 + re75"),
                   match_summary(m_exact, addlvariables = addl))

## ---- CEM, default (Sturges) cut-points -------------------------------------------------------
m_cem <- matchit(f, data = d, method = "cem")
## my own record of the implied breaks: for each numeric covariate k = nclass.Sturges(x) bins,
## equally spaced from min(x) to max(x), outer breaks replaced by -Inf/+Inf, bins by findInterval.
num_covs <- c("age", "educ", "married", "nodegree", "re74", "re75")
sturges_breaks <- lapply(setNames(num_covs, num_covs), function(v) {
  k <- nclass.Sturges(d[[v]])
  b <- seq(min(d[[v]]), max(d[[v]]), length.out = k + 1)
  list(n_bins = k, interior_breaks = b[-c(1, k + 1)])
})
## independent check that these breaks + exact race reproduce MatchIt's CEM strata
own_key <- do.call(paste, c(lapply(num_covs, function(v)
  findInterval(d[[v]], c(-Inf, sturges_breaks[[v]]$interior_breaks, Inf))), list(d$race)))
both_arms <- own_key %in% intersect(own_key[d$treat == 1], own_key[d$treat == 0])
same_partition <- all(both_arms == !is.na(m_cem$subclass)) &&
  all(tapply(as.character(m_cem$subclass[both_arms]), own_key[both_arms],
             function(z) length(unique(z))) == 1) &&
  length(unique(own_key[both_arms])) == length(unique(na.omit(m_cem$subclass)))
stopifnot(same_partition)
results$cem_default <- c(list(implied_breaks_reproduce_matchit_strata = same_partition), list(formula = deparse(f), cutpoints = "sturges (MatchIt default)",
                              implied_breaks = sturges_breaks),
                         match_summary(m_cem))

## ---- CEM, user cut-points ----------------------------------------------------------------------
cuts <- list(age = 4, educ = c(0, 9, 12, 16), re74 = 3)
m_cem2 <- matchit(f, data = d, method = "cem", cutpoints = cuts)
user_breaks <- sturges_breaks
for (v in c("age", "re74")) {
  k <- cuts[[v]]
  b <- seq(min(d[[v]]), max(d[[v]]), length.out = k + 1)
  user_breaks[[v]] <- list(n_bins = k, interior_breaks = b[-c(1, k + 1)])
}
user_breaks$educ <- list(n_bins = length(cuts$educ) + 1, interior_breaks = sort(unique(cuts$educ)))
own_key2 <- do.call(paste, c(lapply(num_covs, function(v)
  findInterval(d[[v]], c(-Inf, user_breaks[[v]]$interior_breaks, Inf))), list(d$race)))
both2 <- own_key2 %in% intersect(own_key2[d$treat == 1], own_key2[d$treat == 0])
same2 <- all(both2 == !is.na(m_cem2$subclass)) &&
  length(unique(own_key2[both2])) == length(unique(na.omit(m_cem2$subclass)))
stopifnot(same2)
results$cem_user <- c(list(implied_breaks_reproduce_matchit_strata = same2,
                           implied_breaks = user_breaks, formula = deparse(f),
                           cutpoints = "list(age = 4, educ = c(0, 9, 12, 16), re74 = 3); others Sturges"),
                      match_summary(m_cem2))

## ---- per-unit CSV ------------------------------------------------------------------------------
units <- data.frame(
  row = seq_len(nrow(d)), rownames = d$rownames, treat = d$treat,
  ps_logit = fitted(g_logit), ps_probit = fitted(g_probit),
  exact_weight = m_exact$weights, exact_subclass = as.integer(as.character(m_exact$subclass)),
  cem_weight = m_cem$weights, cem_subclass = as.integer(as.character(m_cem$subclass)),
  cemuser_weight = m_cem2$weights, cemuser_subclass = as.integer(as.character(m_cem2$subclass)))
write.csv(units, file.path(out_dir, "matchit_units.csv"), row.names = FALSE, na = "")
# NB write.csv keeps 15 significant digits.

## ---- notes -------------------------------------------------------------------------------------
# check which standardisation MatchIt used for a binary covariate (raceblack) before matching
tr <- d$treat == 1
pb <- mean(d$race[tr] == "black")
smd_check <- list(
  raceblack_diff = pb - mean(d$race[!tr] == "black"),
  sd_treated_sqrt_p1p = sqrt(pb * (1 - pb)),
  sd_treated_sample_sd = sd(as.numeric(d$race[tr] == "black")),
  age_sd_treated_sample_sd = sd(d$age[tr]))
smd_check$raceblack_smd_with_sqrt_p1p <- smd_check$raceblack_diff / smd_check$sd_treated_sqrt_p1p
smd_check$age_smd_with_sample_sd <- (mean(d$age[tr]) - mean(d$age[!tr])) / smd_check$age_sd_treated_sample_sd
results$smd_denominator_check <- smd_check
notes$sample <- paste0(
  "lalonde.csv (= MatchIt::lalonde), all ", nrow(d), " rows (185 treated, 429 control), no NAs. ",
  "race is made a factor with levels black, hispan, white (R's default alphabetical order); ",
  "dummy-coded terms raceblack/racehispan/racewhite in balance tables, racehispan/racewhite in glm coefficients. ",
  "matchit_units.csv: one row per original row (row = 1-based position, rownames = the file's rownames column); ",
  "ps_* = glm fitted probabilities (= MatchIt distance; max abs differences recorded); *_weight = MatchIt ",
  "weights (0 = unmatched); *_subclass = MatchIt subclass id (empty = unmatched).")
notes$weights <- paste0(
  "Exact and CEM (ATT): treated matched units weight 1; a matched control in subclass s gets ",
  "(n_treated_s / n_control_s) * (N_control_matched / N_treated_matched); unmatched get 0.")
notes$att <- paste0(
  "ATT = coefficient of treat in lm(re78 ~ treat, data = match.data(m), weights = weights). ",
  "se_vcovCL_subclass_HC1 = sqrt of sandwich::vcovCL(fit, cluster = ~subclass, type = 'HC1') (HC1 is vcovCL's ",
  "default for lm: G/(G-1) * (N-1)/(N-K)); se_vcovHC_HC3 and se_iid are extras.")
notes$balance <- paste0(
  "From summary(m, un = TRUE) (standardize = TRUE, estimand ATT). balance_before = sum.all (full sample), ",
  "balance_after = sum.matched (matched, weighted). std_mean_diff = (mean_t - mean_c) / s, where s is the ",
  "treated group's SD in the FULL (unmatched) sample, used both before and after matching; for binary ",
  "covariates s = sqrt(p(1-p)) with p = treated proportion (no n-1), for others s = sd() with n-1 ",
  "(see smd_denominator_check). var_ratio = var_t / var_c (null for binary covariates); after matching, ",
  "weighted variances. ecdf_mean/ecdf_max = mean/max absolute difference of the (weighted) empirical CDFs ",
  "over the pooled unique values. 'distance' row = logit propensity score (only in the top-level ",
  "balance_before, from matchit(method = NULL, distance = 'glm')). For exact matching, balance is reported for ",
  "the matching covariates plus addlvariables ~ age + educ + re74 + re75.")
notes$cem <- paste0(
  "CEM: factors (race) are matched exactly; each numeric covariate (age, educ, married, nodegree, re74, re75) ",
  "is coarsened into k bins: k = nclass.Sturges(x) = ceiling(log2(n) + 1) = ", nclass.Sturges(d$age),
  " for n = 614 by default, breaks equally spaced from min to max with the two outer breaks set to -Inf/+Inf, ",
  "bin index via findInterval (intervals closed on the left). A single number in cutpoints = number of bins ",
  "by the same rule; a vector = interior cut points (breaks = c(-Inf, sort(unique(cuts)), Inf)). ",
  "Strata with no treated or no control are dropped. implied_breaks lists the interior breaks.")

out <- list(
  source = paste(readLines(script_path), collapse = "\n"),
  r_version = R.version.string,
  package_versions = versions,
  data_files = data_files,
  notes = notes,
  results = results)
write_json(out, file.path(out_dir, "matchit.json"),
           digits = NA, auto_unbox = TRUE, pretty = TRUE, na = "null")
cat("wrote", file.path(out_dir, "matchit.json"), "\n")
