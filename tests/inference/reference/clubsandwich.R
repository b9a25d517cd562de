## Reference values for cluster-robust (clubSandwich, sandwich) and HC covariance estimators.
## Run from the repository root:  Rscript tests/inference/reference/clubsandwich.R
## Writes tests/inference/reference/clubsandwich.json next to this script.

suppressPackageStartupMessages({
  library(clubSandwich)
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
pkgs <- c("clubSandwich", "sandwich", "jsonlite")
versions <- as.list(vapply(pkgs, function(p) as.character(packageVersion(p)), ""))
data_files <- list()
read_data <- function(f) {
  p <- data_path(paste0(f, ".csv"))
  data_files[[f]] <<- list(path_used = p, md5 = unname(tools::md5sum(p)))
  read.csv(p, stringsAsFactors = FALSE)
}
se_of <- function(V, term) sqrt(diag(as.matrix(V)))[[term]]

results <- list()
notes <- list()

## ---- (a) organ donations, TWFE, clustered by State -------------------------------------
od <- read_data("organ_donations")
# Quarter is a string "Q<q><yyyy>" (e.g. "Q32011"); Quarter_Num is an index 1..6 with
# Q42010=1, Q12011=2, Q22011=3, Q32011=4, Q42011=5, Q12012=6 (checked below).
stopifnot(all(od$Quarter_Num[od$Quarter == "Q32011"] == 4))
od$Treated <- as.integer(od$State == "California" & od$Quarter_Num >= 4)
fit_a <- lm(Rate ~ Treated + factor(State) + factor(Quarter), data = od)
ta <- "Treated"
cr_types <- c("CR0", "CR1", "CR1S", "CR2", "CR3")
cr_se <- lapply(setNames(cr_types, cr_types), function(ty) {
  V <- tryCatch(vcovCR(fit_a, cluster = od$State, type = ty), error = function(e) e)
  if (inherits(V, "error")) list(se = NA_real_, error = conditionMessage(V))
  else list(se = se_of(V, ta))
})
ct_cr2 <- coef_test(fit_a, vcov = "CR2", cluster = od$State, test = "Satterthwaite")
ct_cr2 <- ct_cr2[ct_cr2$Coef == ta, ]
ct_cr1s <- coef_test(fit_a, vcov = "CR1S", cluster = od$State, test = "naive-t")
ct_cr1s <- ct_cr1s[ct_cr1s$Coef == ta, ]
V_cl_hc1 <- sandwich::vcovCL(fit_a, cluster = ~State, type = "HC1")
results$organ <- list(
  n = nobs(fit_a), n_clusters = length(unique(od$State)), n_coef = length(coef(fit_a)),
  estimate = unname(coef(fit_a)[ta]),
  iid_se = se_of(vcov(fit_a), ta),
  CR0 = cr_se$CR0, CR1 = cr_se$CR1, CR1S = cr_se$CR1S, CR2 = cr_se$CR2, CR3 = cr_se$CR3,
  coef_test_CR2_Satterthwaite = list(se = ct_cr2$SE, df = ct_cr2$df_Satt,
                                     t = ct_cr2$tstat, p_value = ct_cr2$p_Satt),
  coef_test_CR1S_naive_t = list(se = ct_cr1s$SE, df = ct_cr1s$df_t,
                                t = ct_cr1s$tstat, p_value = ct_cr1s$p_t),
  vcovCL_HC1 = list(se = se_of(V_cl_hc1, ta))
)
results$organ$CR2$df_Satterthwaite <- ct_cr2$df_Satt
notes$organ <- paste0(
  "organ_donations.csv, all ", nrow(od), " rows, no NAs. Quarter is a string like 'Q32011'; ",
  "Quarter_Num is 1..6 (Q42010=1 ... Q32011=4 ... Q12012=6). ",
  "Treated = 1 if State == 'California' and Quarter_Num >= 4 (i.e. Q3 2011 onwards), else 0 ",
  "(", sum(od$Treated), " treated rows). Model: lm(Rate ~ Treated + factor(State) + factor(Quarter)), ",
  "i.e. state and quarter dummies (", length(coef(fit_a)), " coefficients incl. intercept); ",
  "clusters = State (", length(unique(od$State)), "). CR1S = CR1 * (N-1)/(N-p) with p counting all dummies ",
  "(Stata convention), vcovCL type HC1 = G/(G-1) * (N-1)/(N-p); both should equal Stata's 0.0067-ish, ",
  "while fixest's 0.0061 does not count the absorbed FE in p. naive-t df = G - 1. ",
  "CR3 is NOT defined here: every cluster (State) has its own dummy, so I - H_gg is singular and ",
  "clubSandwich's CR3 (solve) fails; CR3.se is null and CR3.error holds R's message. CR2 still works because ",
  "clubSandwich forms (I - H_gg)^(-1/2) from an eigen-decomposition that drops (near-)zero eigenvalues ",
  "(a symmetric pseudo-inverse square root).")

## ---- (b) kielmc, HC covariances ----------------------------------------------------------
kd <- read_data("kielmc")
fit_b <- lm(rprice ~ nearinc + y81 + nearinc:y81 + age + I(age^2), data = kd)
terms_b <- names(coef(fit_b))
hc <- list(iid = vcov(fit_b))
for (ty in c("HC0", "HC1", "HC2", "HC3")) hc[[ty]] <- sandwich::vcovHC(fit_b, type = ty)
results$kielmc <- list(n = nobs(fit_b), terms = terms_b, coefficients = list())
for (tm in terms_b) {
  results$kielmc$coefficients[[tm]] <- c(list(estimate = unname(coef(fit_b)[tm])),
    lapply(hc, function(V) list(se = se_of(V, tm))))
}
notes$kielmc <- paste0(
  "kielmc.csv, all ", nrow(kd), " rows (1978 and 1981 cross-sections), no NAs in used vars. ",
  "Model lm(rprice ~ nearinc + y81 + nearinc:y81 + age + I(age^2)). Term keys are R's names: ",
  "'nearinc:y81' equals the dataset column y81nrinc; 'I(age^2)' equals column agesq. ",
  "iid = classic OLS vcov; HC0..HC3 from sandwich::vcovHC.")

## ---- (c) Thornton HIV: clustered, unweighted and weighted --------------------------------
th <- read_data("thornton_hiv")
th$row_number_1based <- seq_len(nrow(th))            # before dropping NAs
th$w <- 1 + (th$row_number_1based %% 3)
used <- c("got", "any", "age", "distvct", "villnum")
thc <- th[complete.cases(th[, used]), ]
fit_c <- lm(got ~ any + age + distvct, data = thc)
fit_cw <- lm(got ~ any + age + distvct, data = thc, weights = w)
summ_c <- function(fit, cl) {
  ct2 <- coef_test(fit, vcov = "CR2", cluster = cl, test = "Satterthwaite")
  V1s <- vcovCR(fit, cluster = cl, type = "CR1S")
  ct1s <- coef_test(fit, vcov = V1s, test = "naive-t")
  out <- list()
  for (i in seq_len(nrow(ct2))) {
    tm <- ct2$Coef[i]
    out[[tm]] <- list(estimate = ct2$beta[i],
                      CR2 = list(se = ct2$SE[i], df_Satterthwaite = ct2$df_Satt[i],
                                 t = ct2$tstat[i], p_value = ct2$p_Satt[i]),
                      CR1S = list(se = se_of(V1s, tm), df_naive = ct1s$df_t[i],
                                  t = ct1s$tstat[i], p_value_naive_t = ct1s$p_t[i]))
  }
  out
}
results$thornton <- list(
  n = nobs(fit_c), n_clusters = length(unique(thc$villnum)),
  n_dropped = nrow(th) - nrow(thc), sum_weights = sum(thc$w),
  unweighted = summ_c(fit_c, thc$villnum),
  weighted = summ_c(fit_cw, thc$villnum))
notes$thornton <- paste0(
  "thornton_hiv.csv has ", nrow(th), " rows and columns villnum, got, distvct, tinc, any, age, hiv2004 ",
  "(no gender/male column exists, so the two covariates are age and distvct = distance to the VCT centre in km). ",
  "Weights are built BEFORE dropping NAs: w = 1 + (r %% 3) with r = 1-based row number in the original file ",
  "(r = 1 is the first data row after the header), so w cycles 2,3,1,2,3,1,... ",
  "Then rows with NA in any of got, any, age, distvct, villnum are dropped: n = ", nrow(thc),
  " (", nrow(th) - nrow(thc), " dropped), ", length(unique(thc$villnum)), " villages. ",
  "Model lm(got ~ any + age + distvct[, weights = w]); cluster = villnum. ",
  "CR2 SE / Satterthwaite df / p from coef_test(vcov='CR2', test='Satterthwaite'); ",
  "CR1S SE from vcovCR(type='CR1S') with naive-t df = G-1. Weighted fits use vcovCR.lm's defaults for a ",
  "weighted lm: inverse_var = FALSE (weights not treated as inverse-variance) and target = NULL, i.e. ",
  "targetVariance.default = identity working variance (Phi = I); the weights enter through the WLS bread and ",
  "the CR2 adjustment (Pustejovsky & Tipton 2018, general weighted form; formula not restated here).")

## ---- (d) Wald test on (c) unweighted ---------------------------------------------------
wt <- Wald_test(fit_c, constraints = constrain_zero(c("age", "distvct")), vcov = "CR2",
                cluster = thc$villnum, test = c("HTZ", "Naive-F"))
results$thornton_wald <- list(constraints = c("age", "distvct"), vcov = "CR2")
for (i in seq_len(nrow(wt))) {
  results$thornton_wald[[wt$test[i]]] <- list(F = wt$Fstat[i], delta = wt$delta[i],
    df_num = wt$df_num[i], df_denom = wt$df_denom[i], p_val = wt$p_val[i])
}
notes$thornton_wald <- paste0(
  "Wald_test(fit_c, constraints = constrain_zero(c('age','distvct')), vcov = 'CR2', cluster = villnum, ",
  "test = c('HTZ','Naive-F')) on the unweighted Thornton model of (c). Keys 'HTZ' and 'Naive-F'. ",
  "HTZ F is the scaled Hotelling T^2 (delta = scaling multiplier); Naive-F uses df_denom = G - 1.")

## ---- write ----------------------------------------------------------------------------
out <- list(
  source = paste(readLines(script_path), collapse = "\n"),
  r_version = R.version.string,
  package_versions = versions,
  data_files = data_files,
  notes = notes,
  results = results)
write_json(out, file.path(out_dir, "clubsandwich.json"),
           digits = NA, auto_unbox = TRUE, pretty = TRUE, na = "null")
cat("wrote", file.path(out_dir, "clubsandwich.json"), "\n")
