## Reference values from R estimatr (difference_in_means, lm_robust, lm_lin).
## Run from the repository root:  Rscript tests/rct/reference/estimatr.R
## Writes tests/rct/reference/estimatr.json next to this script.

suppressPackageStartupMessages({
  library(estimatr)
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
pkgs <- c("estimatr", "jsonlite")
versions <- as.list(vapply(pkgs, function(p) as.character(packageVersion(p)), ""))
data_files <- list()
read_data <- function(f, ...) {
  p <- data_path(paste0(f, ".csv"))
  data_files[[f]] <<- list(path_used = p, md5 = unname(tools::md5sum(p)))
  read.csv(p, stringsAsFactors = FALSE, ...)
}

## one row of estimatr's tidy output -> named list with python-friendly keys
row_of <- function(fit, term) {
  td <- tidy(fit)
  r <- td[td$term == term, ]
  stopifnot(nrow(r) == 1)
  list(estimate = r$estimate, std_error = r$std.error, statistic = r$statistic,
       df = r$df, p_value = r$p.value, conf_low = r$conf.low, conf_high = r$conf.high)
}
all_rows <- function(fit) {
  td <- tidy(fit)
  setNames(lapply(td$term, function(tm) row_of(fit, tm)), td$term)
}
meta_of <- function(fit) {
  m <- list(nobs = fit$nobs, se_type = fit$se_type, design = fit$design,
            nclusters = fit$nclusters)
  Filter(Negate(is.null), m)   # drop fields this estimator does not set
}

results <- list()
notes <- list()

## ---- Thornton (2008) HIV incentives -------------------------------------------------------
th <- read_data("thornton_hiv")
used <- c("got", "any", "age", "distvct", "villnum")
x <- th[complete.cases(th[, used]), ]

# (1) plain difference in means
dim_plain <- difference_in_means(got ~ any, data = x)

# (2) blocked by village: estimatr needs both arms in every block, and with blocks of
# size 2 it switches to the matched-pairs variance for all blocks. Keep villages with
# at least 2 treated and 2 control units so the standard blocked (Neyman) variance applies.
nt <- tapply(x$any, x$villnum, sum)
nc <- tapply(1 - x$any, x$villnum, sum)
keep_vill <- as.numeric(names(nt)[nt >= 2 & nc >= 2])
xb <- x[x$villnum %in% keep_vill, ]
dim_block <- difference_in_means(got ~ any, blocks = villnum, data = xb)

# (3) clustered DiM: `any` varies within village (individual randomisation), so estimatr's
# clustered DiM is not applicable to Thornton; use a small synthetic cluster-randomised dataset.
syn <- data.frame(
  cl = c(1,1,1, 2,2,2,2, 3,3, 4,4,4,4,4, 5,5,5, 6,6,6,6, 7,7,7, 8,8),
  z  = c(1,1,1, 0,0,0,0, 1,1, 0,0,0,0,0, 1,1,1, 0,0,0,0, 1,1,1, 0,0),
  y  = c(5.1,6.3,4.8, 3.9,4.4,2.7,3.5, 6.8,5.9, 4.1,3.3,5.0,2.9,3.8,
         4.6,5.5,6.1, 2.2,3.6,4.9,3.1, 5.7,7.2,4.4, 3.0,4.3))
dim_clust <- difference_in_means(y ~ z, clusters = cl, data = syn)
lmr_syn_cr2 <- lm_robust(y ~ z, clusters = cl, data = syn)

# (4) lm_robust with covariates
lmr_hc2 <- lm_robust(got ~ any + age + distvct, data = x)                       # HC2 default
lmr_hc1 <- lm_robust(got ~ any + age + distvct, data = x, se_type = "HC1")
lmr_cr2 <- lm_robust(got ~ any + age + distvct, data = x, clusters = villnum)   # CR2 default
lmr_stata <- lm_robust(got ~ any + age + distvct, data = x, clusters = villnum, se_type = "stata")

# (5) Lin (2013) estimator
lin_plain <- lm_lin(got ~ any, covariates = ~ age + distvct, data = x)
lin_cl <- lm_lin(got ~ any, covariates = ~ age + distvct, data = x, clusters = villnum)

# (6) published check: the 2,830 with outcome, treatment and village (age/distvct not required)
x2830 <- th[complete.cases(th[, c("got", "any", "villnum")]), ]
lmr_pub <- lm_robust(got ~ any, data = x2830, se_type = "HC1")

results$thornton <- list(
  n = nrow(x), n_villages = length(unique(x$villnum)),
  n_treated = sum(x$any == 1), n_control = sum(x$any == 0),
  difference_in_means = list(
    plain = c(row_of(dim_plain, "any"), meta_of(dim_plain)),
    blocked_village = c(row_of(dim_block, "any"), meta_of(dim_block),
                        list(n = nrow(xb), n_blocks = length(keep_vill),
                             blocks_kept = sort(keep_vill)))),
  lm_robust = list(
    HC2 = c(list(coefficients = all_rows(lmr_hc2)), meta_of(lmr_hc2)),
    HC1 = c(list(coefficients = all_rows(lmr_hc1)), meta_of(lmr_hc1)),
    cluster_CR2 = c(list(coefficients = all_rows(lmr_cr2)), meta_of(lmr_cr2)),
    cluster_stata = c(list(coefficients = all_rows(lmr_stata)), meta_of(lmr_stata))),
  lm_lin = list(
    covariate_means = list(age = mean(x$age), distvct = mean(x$distvct)),
    HC2 = c(list(coefficients = all_rows(lin_plain)), meta_of(lin_plain)),
    cluster_CR2 = c(list(coefficients = all_rows(lin_cl)), meta_of(lin_cl))),
  published_check_n2830 = c(list(n = nrow(x2830)), row_of(lmr_pub, "any"), meta_of(lmr_pub))
)
results$synthetic_cluster_dim <- list(
  data = list(cluster = syn$cl, treat = syn$z, y = syn$y),
  difference_in_means = c(row_of(dim_clust, "z"), meta_of(dim_clust)),
  lm_robust_CR2 = c(row_of(lmr_syn_cr2, "z"), meta_of(lmr_syn_cr2))
)
notes$thornton <- paste0(
  "thornton_hiv.csv columns: villnum, got, distvct, tinc, any, age, hiv2004. There is no gender/male ",
  "and no site/district column, so covariates are age and distvct (distance to VCT, km) and blocks = villnum. ",
  "Main sample: rows with no NA in got, any, age, distvct, villnum: n = ", nrow(x), " of ", nrow(th),
  " (", length(unique(x$villnum)), " villages). All Thornton fits use this sample except: ",
  "(i) blocked DiM: only villages with >= 2 treated and >= 2 control units in the main sample (",
  length(keep_vill), " villages, n = ", nrow(xb), "; listed in blocks_kept) because estimatr errors on blocks ",
  "lacking an arm and switches to the matched-pairs variance if any block has 2 units; ",
  "(ii) published_check_n2830: rows with got, any, villnum non-NA (n = ", nrow(x2830), "), lm_robust(got ~ any, se_type='HC1'). ",
  "NB: the shared PROVENANCE.md quotes OLS 0.4506 (HC1 0.0209) 'on the 2,830'; in R 0.4506 is the coefficient of ",
  "lm_robust(got ~ any + age + distvct) on the n = 2825 sample (lm_robust$HC1 here, SE 0.02078), whereas got ~ any ",
  "on the 2,830 gives 0.45198 (HC1 0.02085). ",
  "Clustered DiM on Thornton is impossible because `any` varies within ",
  sum(tapply(x$any, x$villnum, function(v) length(unique(v))) > 1), " of the villages; see synthetic_cluster_dim. ",
  "lm_robust coefficient keys are R term names ('(Intercept)', 'any', 'age', 'distvct'). ",
  "lm_lin centres covariates at their (unweighted) sample means over the same n (covariate_means), names them ",
  "age_c, distvct_c and adds any:age_c, any:distvct_c. 'stata' se_type = CR1 with (G/(G-1))*((N-1)/(N-K)). ",
  "CR2 df are estimatr's Bell-McCaffrey/Satterthwaite df per coefficient; HC df = N - K.")
notes$synthetic_cluster_dim <- paste0(
  "Hand-written dataset (values inline under data): 8 clusters, 26 units, treatment assigned at cluster level ",
  "(clusters 1,3,5,7 treated). difference_in_means(y ~ z, clusters = cl) (design 'Clustered'): estimatr ",
  "computes it as lm_robust(y ~ z, clusters = cl) with CR2 and Bell-McCaffrey/Satterthwaite df ",
  "(not G - 2); lm_robust_CR2 is stored alongside and agrees to ~1e-15.")

## ---- STAR (Stock & Watson Table 13.1) ------------------------------------------------------
st <- read_data("star", na.strings = c("", "NA"))
star_fit <- function(grade) {
  cls <- paste0("star", grade); rd <- paste0("read", grade); mt <- paste0("math", grade)
  sid <- paste0("schoolid", grade)
  d <- st[complete.cases(st[, c(cls, rd, mt)]), ]
  stopifnot(!anyNA(d[[sid]]))
  d$score <- d[[rd]] + d[[mt]]
  d$small <- as.integer(d[[cls]] == "small")
  d$regaide <- as.integer(d[[cls]] == "regular+aide")
  d$school <- d[[sid]]
  f_hc1 <- lm_robust(score ~ small + regaide, data = d, se_type = "stata")
  f_cr2 <- lm_robust(score ~ small + regaide, data = d, clusters = school)
  list(n = nrow(d), n_small = sum(d$small), n_regaide = sum(d$regaide),
       n_regular = sum(d$small == 0 & d$regaide == 0), n_schools = length(unique(d$school)),
       HC1 = c(list(coefficients = all_rows(f_hc1)), meta_of(f_hc1)),
       cluster_CR2 = c(list(coefficients = all_rows(f_cr2)), meta_of(f_cr2)))
}
results$star <- list(kindergarten = star_fit("k"), grade1 = star_fit("1"))
notes$star <- paste0(
  "star.csv (AER::STAR, wide), read with na.strings = c('', 'NA') (empty strings are missing). ",
  "Kindergarten: rows with stark, readk, mathk all non-missing; score = readk + mathk; small = (stark == 'small'), ",
  "regaide = (stark == 'regular+aide'), reference = 'regular'; cluster = schoolidk. ",
  "Grade 1: same with star1, read1, math1, schoolid1. No NA in the school ids within these samples. ",
  "HC1 = lm_robust(se_type = 'stata') without clusters (Stock & Watson: small 13.90 (2.45); grade 1 29.78 (2.83)); ",
  "cluster_CR2 = lm_robust(clusters = school) with default CR2.")

## ---- write ----------------------------------------------------------------------------
out <- list(
  source = paste(readLines(script_path), collapse = "\n"),
  r_version = R.version.string,
  package_versions = versions,
  data_files = data_files,
  notes = notes,
  results = results)
write_json(out, file.path(out_dir, "estimatr.json"),
           digits = NA, auto_unbox = TRUE, pretty = TRUE, na = "null")
cat("wrote", file.path(out_dir, "estimatr.json"), "\n")
