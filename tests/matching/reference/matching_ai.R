## Reference values from R Matching (Sekhon) for nearest-neighbour matching with replacement on an
## estimated propensity score: ATT and ATE with the Abadie-Imbens (2006) standard error.
##   ps <- fitted(glm(treat ~ age + educ + race + married + nodegree + re74 + re75, binomial))
##   Match(Y = re78, Tr = treat, X = ps, estimand = E, M = M, replace = TRUE, ties = TRUE,
##         Var.calc = 2, distance.tolerance = 0)
## Var.calc = 2: each unit's conditional variance from itself and its 2 nearest same-group units
## (the default Var.calc = 0 would assume a homoskedastic outcome). distance.tolerance = 0 so that
## only exactly equal scores are ties. Matching treats the score as known (no Abadie-Imbens 2016
## adjustment); est.noadj is the unadjusted estimate.
## Run from the repository root:  Rscript tests/matching/reference/matching_ai.R
## Writes matching_ai.json next to this script.

suppressPackageStartupMessages({
  library(Matching)
  library(jsonlite)
})
script_path <- normalizePath(sub("^--file=", "",
  grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)[1]))
out_dir <- dirname(script_path)
p_csv <- if (file.exists("data/lalonde.csv")) "data/lalonde.csv" else stop("run from the repository root")
d <- read.csv(p_csv, stringsAsFactors = FALSE)
d$race <- factor(d$race, levels = c("black", "hispan", "white"))
ps <- fitted(glm(treat ~ age + educ + race + married + nodegree + re74 + re75, data = d, family = binomial()))

results <- list()
for (estimand in c("ATT", "ATE", "ATC")) {
  for (M in c(1, 3)) {
    m <- Match(Y = d$re78, Tr = d$treat, X = ps, estimand = estimand, M = M, replace = TRUE,
               ties = TRUE, Var.calc = 2, distance.tolerance = 0)
    results[[paste0(estimand, "_M", M)]] <- list(
      call = sprintf("Match(Y = re78, Tr = treat, X = ps, estimand = '%s', M = %d, replace = TRUE, ties = TRUE, Var.calc = 2, distance.tolerance = 0)", estimand, M),
      estimate = unname(m$est[1, 1]), se = unname(m$se), n_matched_rows = length(m$index.treated),
      max_weight = max(m$weights))
  }
}
out <- list(source = paste(readLines(script_path), collapse = "\n"),
            versions = list(R = R.version.string, Matching = as.character(packageVersion("Matching")),
                            jsonlite = as.character(packageVersion("jsonlite"))),
            data = list(path = p_csv, md5 = unname(tools::md5sum(p_csv))),
            ps_first = unname(ps[1:3]), results = results)
write_json(out, file.path(out_dir, "matching_ai.json"), digits = NA, auto_unbox = TRUE, pretty = TRUE)
cat("wrote", file.path(out_dir, "matching_ai.json"), "\n")
