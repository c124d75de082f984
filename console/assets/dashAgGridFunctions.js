/* Functions the console's AG Grids name in their column definitions (dash-ag-grid looks them up here). */
var dagfuncs = (window.dashAgGridFunctions = window.dashAgGridFunctions || {});

/* X.733 severities by rank, not alphabetically (mirrors console/severity.py). */
const DCOPS_SEVERITY_RANK = {cleared: 0, indeterminate: 1, warning: 2, minor: 3, major: 4, critical: 5};
dagfuncs.severityCompare = function (a, b) {
  const ra = a in DCOPS_SEVERITY_RANK ? DCOPS_SEVERITY_RANK[a] : 1;
  const rb = b in DCOPS_SEVERITY_RANK ? DCOPS_SEVERITY_RANK[b] : 1;
  return ra - rb;
};
