## Reference values for impact.meta.pool(..., cluster=): cluster-robust (CR2) inference on the pooled
## effect of dependent estimates, from R clubSandwich on metafor fits.
## Run from the repository root:  Rscript tests/meta/reference/clubsandwich_pool.R
## Writes tests/meta/reference/clubsandwich_pool.json next to this script.
##   fit <- rma(yi, vi, method = METHOD)
##   coef_test(fit, vcov = "CR2", cluster = CLUSTER, test = "Satterthwaite")
##   predict(fit)  (tau^2, to check the fit itself)

suppressPackageStartupMessages({
  library(metafor)
  library(clubSandwich)
  library(jsonlite)
})

script_path <- normalizePath(sub("^--file=", "",
  grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)[1]))
out_dir <- dirname(script_path)
pkgs <- c("metafor", "clubSandwich", "jsonlite")
versions <- as.list(vapply(pkgs, function(p) as.character(packageVersion(p)), ""))
versions$R <- paste(R.version$major, R.version$minor, sep = ".")

d <- read.csv("data/bcg.csv", stringsAsFactors = FALSE)
bcg <- escalc(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = d)

## case 1: region estimates of two programmes (seven and five regions), as the portfolio pools them
regions <- list(
  yi = c(0.72, 0.74, 0.58, 0.68, 0.15, 0.62, 0.57, 1.04, 0.59, 0.96, 0.74, 0.43),
  sei = c(0.30, 0.29, 0.27, 0.28, 0.19, 0.26, 0.23, 0.46, 0.29, 0.43, 0.30, 0.21),
  cluster = c(rep("bsp", 7), rep("skills", 5))
)
## case 2: simulated dependent estimates, 6 programmes of 1 to 5 regions (seed 2026)
set.seed(2026)
sizes <- c(1, 2, 3, 4, 5, 3)
cl <- rep(paste0("p", seq_along(sizes)), sizes)
prog <- rnorm(length(sizes), 0, 0.2)[as.integer(factor(cl, levels = unique(cl)))]
sei <- round(runif(length(cl), 0.1, 0.4), 3)
yi <- round(0.3 + prog + rnorm(length(cl), 0, sei), 4)
sim <- list(yi = yi, sei = sei, cluster = cl)

run <- function(yi, vi, cluster, method) {
  fit <- rma(yi, vi, method = method)
  ct <- coef_test(fit, vcov = "CR2", cluster = cluster, test = "Satterthwaite")
  list(method = method, tau2 = fit$tau2, estimate = as.numeric(fit$beta), se = ct$SE,
       df = ct$df_Satt, p_value = ct$p_Satt)
}

results <- list()
for (m in c("REML", "DL", "FE")) {
  results[[paste0("regions_", m)]] <- c(list(yi = regions$yi, sei = regions$sei, cluster = regions$cluster),
                                        run(regions$yi, regions$sei^2, regions$cluster, m))
  results[[paste0("simulated_", m)]] <- c(list(yi = sim$yi, sei = sim$sei, cluster = sim$cluster),
                                          run(sim$yi, sim$sei^2, sim$cluster, m))
  ## bcg: the 13 trials clustered by allocation method (random, alternate, systematic)
  results[[paste0("bcg_alloc_", m)]] <- c(list(yi = as.numeric(bcg$yi), sei = sqrt(as.numeric(bcg$vi)), cluster = bcg$alloc),
                                          run(as.numeric(bcg$yi), as.numeric(bcg$vi), bcg$alloc, m))
}

write_json(list(versions = versions, results = results), file.path(out_dir, "clubsandwich_pool.json"),
           digits = NA, auto_unbox = TRUE, pretty = TRUE)
cat("wrote", file.path(out_dir, "clubsandwich_pool.json"), "\n")
