// Live alerts: a banner on every signed-in page when something new concerns this user
// (GET /events, the same stream as the API's). An event names a record only; the link
// opens it, where the normal rules decide what is shown. Without JavaScript the pages
// work as before, without the banner.
(function () {
  'use strict';
  var box = document.getElementById('alert');
  if (!box || !window.EventSource) return;
  var link = box.querySelector('a');
  var record = function (d) { return '/referrals/' + encodeURIComponent(d.id); };
  var where = {
    'observation.filed': function () { return '/observations'; },
    'situation_report.published': function () { return '/situation-reports'; },
    'referral.received': record,
    'referral.feedback': record
  };
  var source = new EventSource('/events');
  Object.keys(where).forEach(function (kind) {
    source.addEventListener(kind, function (e) {
      var d;
      try { d = JSON.parse(e.data); } catch (_) { return; }
      link.textContent = box.getAttribute('data-' + kind.replace(/[._]/g, '-'));
      link.href = where[kind](d);
      box.hidden = false;
    });
  });
})();
