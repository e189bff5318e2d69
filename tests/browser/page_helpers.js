// Installed in every JupyterLab page the browser test opens (tests/browser/labdriver.py):
// small accessors over window.jupyterapp (LabApp.expose_app_in_browser).
window.__mailproto = {
  panel(path) {
    const app = window.jupyterapp;
    if (!app) return null;
    for (const w of app.shell.widgets('main')) {
      if (w.context && w.context.path === path && w.content && w.content.widgets) return w;
    }
    return null;
  },
  kernel(path) {
    const p = this.panel(path);
    if (!p) return 'no notebook panel';
    if (!p.context.isReady) return 'loading';
    const k = p.sessionContext.session && p.sessionContext.session.kernel;
    if (!k) return 'no kernel';
    return k.connectionStatus + '/' + k.status;
  },
  runAll(path) {
    const app = window.jupyterapp;
    const p = this.panel(path);
    app.shell.activateById(p.id);
    window.__mailproto.runAllResult = 'pending';
    // The doc: do not block on the run-all call (it hung); poll the cells instead.
    app.commands.execute('notebook:run-all-cells').then(
      (r) => { window.__mailproto.runAllResult = 'done ' + r; },
      (e) => { window.__mailproto.runAllResult = 'error ' + e; });
    return true;
  },
  autoRun(path, patience) {
    // Run All as soon as the kernel is idle, from inside the page: a notebook opened ahead of
    // time runs while the test before it is still clicking.
    const self = this;
    self.runAllResult = 'waiting for an idle kernel';
    const t0 = Date.now();
    const tick = () => {
      let state;
      try { state = self.kernel(path); } catch (e) { state = 'error ' + e; }
      if (state === 'connected/idle') { self.runAll(path); return; }
      if (Date.now() - t0 > patience) {
        self.runAllResult = 'error: kernel not idle after ' + patience + ' ms: ' + state;
        return;
      }
      setTimeout(tick, 100);
    };
    tick();
    return true;
  },
  cells(path) {
    const p = this.panel(path);
    const out = [];
    p.content.widgets.forEach((cell, index) => {
      const m = cell.model;
      if (m.type !== 'code') return;
      const source = m.sharedModel.getSource();
      const tags = m.getMetadata('tags') || [];
      const outputs = [];
      for (let i = 0; i < m.outputs.length; i++) {
        const o = m.outputs.get(i).toJSON();
        const data = o.data || {};
        outputs.push({
          type: o.output_type, name: o.name || null, ename: o.ename || null,
          evalue: o.evalue || null,
          traceback: (o.traceback || []).join('\n'),
          text: typeof o.text === 'string' ? o.text : (o.text || []).join(''),
          mimes: Object.keys(data),
        });
      }
      // What the page shows on stderr (errors are rendered so too), besides the model.
      const stderr = [...cell.outputArea.node.querySelectorAll(
          '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')]
        .map((n) => n.innerText.slice(-3000));
      out.push({index, source: source.slice(0, 200), blank: source.trim() === '',
                count: m.executionCount, state: m.executionState || null, tags, outputs,
                stderr});
    });
    return out;
  },
  widgetViews(path) {
    // One entry per widget output: how the output area shows it.  The widget renderer's
    // node has no data-mime-type; the widget's view (.jupyter-widgets) sits right in it.
    const p = this.panel(path);
    const views = [];
    p.content.widgets.forEach((cell, index) => {
      if (cell.model.type !== 'code') return;
      const nodes = cell.outputArea.node.querySelectorAll(
        ':scope > .jp-OutputArea-child > .jp-OutputArea-output');
      for (let i = 0; i < cell.model.outputs.length; i++) {
        const data = cell.model.outputs.get(i).toJSON().data || {};
        if (!('application/vnd.jupyter.widget-view+json' in data)) continue;
        const n = nodes[i];
        const view = n ? n.querySelector(':scope > .jupyter-widgets') : null;
        views.push({cell: index, output: i,
                    shownAs: n ? (n.dataset.mimeType || (view ? 'widget' : 'nothing')) : 'absent',
                    error: !!(view && view.classList.contains('jupyter-widgets-error-widget'))});
      }
    });
    const errors = [...p.content.node.querySelectorAll('.jupyter-widgets-error-widget')]
      .map((n) => n.innerText.slice(0, 300));
    return {views, errors};
  },
  // A stepper's or console's views, read from the DOM (root: the widget's node).
  snapshot(root, fill) {
    // The HTML and the SVG travel as fingerprints (length and FNV-1a hash), not 40 kB strings.
    const digest = (s) => {
      let h = 0x811c9dc5;
      for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
      return s.length + ':' + (h >>> 0).toString(16);
    };
    const t = root.querySelector('.mailproto-transcript');
    const svg = root.querySelector('svg');
    // One line per step: "S: 250 2.0.0 Ok [CONNECTED → GREETED]" (the notes are left out).
    const steps = t ? [...t.querySelectorAll('div[data-step]')].map((d) => ({
        dir: d.dataset.dir,
        line: (d.firstElementChild || d).textContent.replace(/\s+/g, ' ').trim()
                .replace(/^[^A-Za-z]*[CS]:\s*/, '')})) : [];
    const hot = svg ? [...svg.querySelectorAll('g[id^="state:"]')]
        .filter((g) => g.innerHTML.toLowerCase().includes('fill: ' + fill))
        .map((g) => g.id.slice(6)) : [];
    const states = svg ? [...svg.querySelectorAll('g[id^="state:"]')].map((g) => g.id.slice(6)) : [];
    return {transcript: t ? digest(t.innerHTML) : null, svg: svg ? digest(svg.outerHTML) : null,
            steps, hot, states, text: root.innerText.slice(0, 2000)};
  },
};
