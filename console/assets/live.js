/* Back-pressure for the console's live refresh.
 *
 * Every live page re-renders on the shell's tick. dash-renderer keeps only the newest request of a
 * callback: when a tick re-triggers a callback whose previous request is still in flight, the
 * older response is dropped. On a loaded server, where a render takes longer than the refresh
 * period, every response would be dropped and the page would stop updating (operator actions
 * included, since their refresh rides on the same callbacks). So the shell's interval
 * ("shell-clock") only advances the tick ("shell-tick") that pages listen to when no callback
 * request is in flight; a tick skipped that way is taken at the next interval. A request that
 * never settles cannot stall the page for more than MAX_SKIPS intervals.
 */
(function () {
  const live = (window.dcopsLive = window.dcopsLive || {inflight: 0, skipped: 0});
  const MAX_SKIPS = 30;
  if (!live.patched && window.fetch) {
    const orig = window.fetch.bind(window);
    window.fetch = function (input, init) {
      const url = typeof input === "string" ? input : (input && input.url) || "";
      if (url.indexOf("_dash-update-component") < 0) return orig(input, init);
      live.inflight += 1;
      return orig(input, init).finally(() => { live.inflight -= 1; });
    };
    live.patched = true;
  }
  window.dash_clientside = Object.assign({}, window.dash_clientside, {
    dcops: {
      tick: function (n, current) {
        if (live.inflight > 0 && live.skipped < MAX_SKIPS) {
          live.skipped += 1;
          return window.dash_clientside.no_update;
        }
        live.skipped = 0;
        return (current || 0) + 1;
      },
    },
  });
})();
