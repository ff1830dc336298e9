// simsbrt plan viewer: reads the JSON document embedded in the page (simsbrt/view/data.py) and draws
// axial, coronal and sagittal slices of density, dose colour wash, isodose lines and structure outlines,
// with a cursor read-out and DVHs. No network: everything is in this file.
"use strict";
(async function () {
  const DOC = JSON.parse(document.getElementById("view-data").textContent);
  const [NX, NY, NZ] = DOC.shape;
  const [SX, SY, SZ] = DOC.spacing_mm;
  const [OX, OY, OZ] = DOC.origin_mm;
  const flat = (i, j, k) => (i * NY + j) * NZ + k;

  async function unpack(b64) {
    const bin = atob(b64);
    const bytes = new Uint8Array(bin.length);
    for (let n = 0; n < bin.length; n++) bytes[n] = bin.charCodeAt(n);
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  }
  for (const an of DOC.anatomies) {
    an.densityQ = await unpack(an.density);
    for (const s of an.structures) s.bitsQ = await unpack(s.bits);
    an.byName = Object.fromEntries(an.structures.map((s) => [s.name, s]));
  }
  for (const p of DOC.plans) {
    if (p.dose) { const b = await unpack(p.dose); p.doseQ = new Uint16Array(b.buffer, b.byteOffset, b.byteLength / 2); }
  }
  const inMask = (s, idx) => (s.bitsQ[idx >> 3] >> (7 - (idx & 7))) & 1;
  const doseAt = (p, idx) => (p.doseQ ? p.doseQ[idx] * p.scale_gy : null);
  const structureNames = [];
  const structureColour = {};
  for (const an of DOC.anatomies) for (const s of an.structures) {
    if (!(s.name in structureColour)) { structureNames.push(s.name); structureColour[s.name] = s.colour; }
  }
  const maxDose = Math.max(0, ...DOC.plans.filter((p) => p.dose).map((p) => p.max_gy));
  const dosePlans = DOC.plans.map((p, n) => n).filter((n) => DOC.plans[n].dose);

  // Display layout (radiological convention): patient left (+x) on the image right, anterior (-y) up,
  // superior (+z) up; sagittal seen from the patient's left side: anterior on the left.
  const PLANES = {
    axial: { axis: 2, nc: NX, nr: NY, dc: SX, dr: SY, voxel: (c, r, s) => [c, r, s], cr: (v) => [v[0], v[1]],
             top: "A", bottom: "P", left: "R", right: "L" },
    coronal: { axis: 1, nc: NX, nr: NZ, dc: SX, dr: SZ, voxel: (c, r, s) => [c, s, NZ - 1 - r], cr: (v) => [v[0], NZ - 1 - v[2]],
               top: "S", bottom: "I", left: "R", right: "L" },
    sagittal: { axis: 0, nc: NY, nr: NZ, dc: SY, dr: SZ, voxel: (c, r, s) => [s, c, NZ - 1 - r], cr: (v) => [v[1], NZ - 1 - v[2]],
                top: "S", bottom: "I", left: "A", right: "P" },
  };
  const PLANE_NAMES = ["axial", "coronal", "sagittal"];
  const AXIS_N = [NX, NY, NZ];
  const AXIS_NAME = ["x", "y", "z"];
  const worldMm = (v) => [OX + v[0] * SX, OY + v[1] * SY, OZ + v[2] * SZ];

  // axial beside the coronal-over-sagittal column in about 1000 pixels, at 1 to 3 pixels per mm
  const ZOOMS = [1, 1.25, 1.5, 2, 3];
  function defaultZoom() {
    const z = 1000 / (NX * SX + Math.max(NX * SX, NY * SY));
    return ZOOMS.slice().reverse().find((v) => v <= z) || 1;
  }
  const DVH_DEFAULT = ["GTV", "PTV_Eval", "SpinalCord_PRV02", "ThecalSac"];   // the protocol's structures
  const state = {
    slice: { sagittal: DOC.start[0], coronal: DOC.start[1], axial: DOC.start[2] },
    cursor: null, display: "single", a: dosePlans.length ? dosePlans[0] : 0,
    b: dosePlans.length > 1 ? dosePlans[1] : 0, zoom: defaultZoom(), levels: DOC.isodose_gy.slice(),
    washMin: Math.round(0.1 * maxDose * 10) / 10, washMax: Math.ceil(maxDose), opacity: 0.5, diffRange: 5,
    shown: new Set(structureNames), dvh: new Set(structureNames.filter((n) => DVH_DEFAULT.includes(n))),
    only: null, renders: 0,
  };
  if (!state.dvh.size) structureNames.forEach((n) => state.dvh.add(n));

  // --------------------------------------------------------------- colour maps
  const TURBO = [[48, 18, 59], [70, 107, 227], [40, 187, 236], [50, 242, 152], [164, 252, 60],
                 [237, 208, 58], [251, 128, 34], [210, 49, 5], [122, 4, 3]];
  function mapColour(stops, t) {
    t = Math.min(1, Math.max(0, t)) * (stops.length - 1);
    const n = Math.min(stops.length - 2, Math.floor(t));
    const f = t - n;
    return stops[n].map((v, m) => v + f * (stops[n + 1][m] - v));
  }
  const DIVERGING = [[33, 102, 172], [103, 169, 207], [209, 229, 240], [247, 247, 247], [253, 219, 199], [239, 138, 98], [178, 24, 43]];
  const rgb = (c) => `rgb(${c.map(Math.round).join(",")})`;
  const levelColour = (L) => rgb(mapColour(TURBO, (L - state.washMin) / Math.max(1e-9, state.washMax - state.washMin)));

  // --------------------------------------------------------------- DOM
  const app = document.getElementById("app");
  app.innerHTML = "";
  const el = (tag, attrs = {}, text = "") => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text) e.textContent = text;
    return e;
  };
  const controls = el("div", { id: "controls" });
  app.appendChild(controls);
  function addControl(label, input) {
    const l = el("label", {}, label + " ");
    l.appendChild(input);
    controls.appendChild(l);
    return input;
  }
  function planSelect(id, value) {
    const s = el("select", { id });
    DOC.plans.forEach((p, n) => { const o = el("option", { value: String(n) }, p.label); s.appendChild(o); });
    s.value = String(value);
    return s;
  }
  const selA = addControl("plan", planSelect("plan-a", state.a));
  const selDisplay = addControl("display", el("select", { id: "display" }));
  for (const [v, t] of [["single", "one plan"], ["side", "two plans side by side"], ["diff", "difference (plan - other)"]]) {
    selDisplay.appendChild(el("option", { value: v }, t));
  }
  const selB = addControl("other plan", planSelect("plan-b", state.b));
  const inLevels = addControl("isodose lines (Gy)", el("input", { id: "isodose", type: "text", value: state.levels.join(", ") }));
  const inMin = addControl("wash from (Gy)", el("input", { id: "wash-min", type: "number", step: "0.5", value: state.washMin }));
  const inMax = addControl("to (Gy)", el("input", { id: "wash-max", type: "number", step: "0.5", value: state.washMax }));
  const inOpacity = addControl("opacity", el("input", { id: "opacity", type: "range", min: "0", max: "1", step: "0.05", value: state.opacity }));
  const inDiff = addControl("difference scale +/- (Gy)", el("input", { id: "diff-range", type: "number", step: "0.5", min: "0.1", value: state.diffRange }));
  const selZoom = addControl("zoom", el("select", { id: "zoom" }));
  for (const z of ZOOMS) selZoom.appendChild(el("option", { value: String(z) }, z + " px/mm"));
  selZoom.value = String(state.zoom);

  const main = el("div", { id: "main" });
  app.appendChild(main);
  const table = el("table", { class: "views" });
  main.appendChild(table);
  const side = el("div", { id: "side" });
  main.appendChild(side);
  side.appendChild(el("div", { id: "readout" }, "move the mouse over a slice"));
  side.appendChild(el("div", { id: "legend" }));
  const dvhCanvas = el("canvas", { id: "dvh", width: "420", height: "320" });
  side.appendChild(dvhCanvas);
  const structDiv = el("div", { id: "structures" });
  side.appendChild(structDiv);
  structDiv.appendChild(el("div", {}, "structures: outline / DVH"));
  for (const name of structureNames) {
    const l = el("label");
    const toggle = (set, title, attrs) => {
      const cb = el("input", { type: "checkbox", title, ...attrs });
      cb.checked = set.has(name);
      cb.addEventListener("change", () => { cb.checked ? set.add(name) : set.delete(name); render(); });
      return cb;
    };
    const sw = el("span", { class: "swatch" });
    sw.style.background = structureColour[name];
    l.append(toggle(state.shown, "outline", { "data-structure": name }), toggle(state.dvh, "DVH", { "data-dvh": name }),
             sw, document.createTextNode(name));
    structDiv.appendChild(l);
  }
  const notes = el("div", { id: "notes" });
  app.appendChild(notes);
  const empties = [...new Set(DOC.anatomies.flatMap((a) => a.empty_structures))];
  notes.innerHTML = "<p>Orientation (DICOM LPS axes): axial and coronal views show the patient's left on the image right " +
    "(radiological convention), anterior up in the axial view, superior up in the coronal and sagittal views; the sagittal " +
    "view has anterior on the left. Slider, mouse wheel or arrow keys move through the slices; click a point to " +
    "centre the other views on it.</p><p>Dose is stored as 16-bit integers: " +
    DOC.plans.filter((p) => p.dose).map((p) => `${p.label}: 1 unit = ${p.scale_gy.toPrecision(4)} Gy ` +
      `(read-out within ${(p.scale_gy / 2).toPrecision(2)} Gy of the plan's dose), max ${p.max_gy.toFixed(2)} Gy`).join("; ") +
    ". DVHs are computed from the full-precision dose by simsbrt. Outlines pass through voxel edges (a structure is its voxels)." +
    (empties.length ? " Empty at this level (not drawn): " + empties.join(", ") + "." : "") + "</p>";

  // slider row
  const sliders = {};
  const labels = {};
  const head = el("tr");
  head.appendChild(el("th"));
  const headCells = { axial: el("th"), coronal: el("th") };
  headCells.sagittal = headCells.coronal;
  for (const name of PLANE_NAMES) {
    const th = headCells[name];
    const P = PLANES[name];
    const n = AXIS_N[P.axis];
    const box = el("div", {}, name);
    const s = el("input", { type: "range", class: "slider", id: `slider-${name}`, min: "0", max: String(n - 1), step: "1",
                           value: String(state.slice[name]) });
    s.addEventListener("input", () => { state.slice[name] = parseInt(s.value, 10); render(); });
    sliders[name] = s;
    labels[name] = el("span", { class: "slider-label", id: `label-${name}` });
    box.append(s, labels[name]);
    th.appendChild(box);
    if (!head.contains(th)) head.appendChild(th);
  }
  table.appendChild(head);
  const panelRows = el("tbody");
  table.appendChild(panelRows);

  function panels() {
    if (state.display === "side") return [{ kind: "dose", plan: state.a }, { kind: "dose", plan: state.b }];
    if (state.display === "diff") return [{ kind: "diff", plan: state.a, other: state.b }];
    return [{ kind: "dose", plan: state.a }];
  }

  let canvases = [];
  function buildPanels() {
    panelRows.innerHTML = "";
    canvases = [];
    panels().forEach((panel, pn) => {
      const tr = el("tr");
      const title = panel.kind === "diff" ? `${DOC.plans[panel.plan].label} - ${DOC.plans[panel.other].label}` : DOC.plans[panel.plan].label;
      const td0 = el("td");
      td0.appendChild(el("div", { class: "panel-title" }, title));
      tr.appendChild(td0);
      const cells = { axial: el("td"), coronal: el("td") };
      cells.sagittal = cells.coronal;
      for (const name of PLANE_NAMES) {
        const P = PLANES[name];
        const td = cells[name];
        const c = el("canvas", { class: "view", id: `view-${pn}-${name}`, width: String(Math.round(P.nc * P.dc * state.zoom)),
                                height: String(Math.round(P.nr * P.dr * state.zoom)) });
        c.dataset.plane = name;
        attachMouse(c, name);
        td.appendChild(c);
        td.appendChild(el("div", { class: "orient" }, `${name}: top ${P.top}, bottom ${P.bottom}, left ${P.left}, right ${P.right}`));
        if (!tr.contains(td)) tr.appendChild(td);
        canvases.push({ canvas: c, plane: name, panel });
      }
      panelRows.appendChild(tr);
    });
  }

  // --------------------------------------------------------------- mouse and keys
  function voxelAt(c, name, ev) {
    const P = PLANES[name];
    const rect = c.getBoundingClientRect();
    const px = (ev.clientX - rect.left) * (c.width / rect.width);
    const py = (ev.clientY - rect.top) * (c.height / rect.height);
    const col = Math.floor(px / (P.dc * state.zoom));
    const row = Math.floor(py / (P.dr * state.zoom));
    if (col < 0 || row < 0 || col >= P.nc || row >= P.nr) return null;
    return P.voxel(col, row, state.slice[name]);
  }
  function attachMouse(c, name) {
    c.addEventListener("mousemove", (ev) => { state.lastPlane = name; const v = voxelAt(c, name, ev); if (v) { state.cursor = v; render(); } });
    c.addEventListener("click", (ev) => {
      const v = voxelAt(c, name, ev);
      if (!v) return;
      state.cursor = v;
      for (const other of PLANE_NAMES) setSlice(other, v[PLANES[other].axis]);
      render();
    });
    c.addEventListener("wheel", (ev) => { ev.preventDefault(); setSlice(name, state.slice[name] + (ev.deltaY > 0 ? -1 : 1)); render(); },
                       { passive: false });
  }
  function setSlice(name, value) {
    const n = AXIS_N[PLANES[name].axis];
    state.slice[name] = Math.max(0, Math.min(n - 1, value));
    sliders[name].value = String(state.slice[name]);
  }
  document.addEventListener("keydown", (ev) => {
    if (ev.target instanceof HTMLInputElement || ev.target instanceof HTMLSelectElement) return;   // their own keys
    const P = state.lastPlane || "axial";
    if (ev.key === "ArrowUp" || ev.key === "PageUp") { setSlice(P, state.slice[P] + 1); render(); }
    if (ev.key === "ArrowDown" || ev.key === "PageDown") { setSlice(P, state.slice[P] - 1); render(); }
  });

  // --------------------------------------------------------------- controls
  selA.addEventListener("change", () => { state.a = parseInt(selA.value, 10); buildPanels(); render(); });
  selB.addEventListener("change", () => { state.b = parseInt(selB.value, 10); buildPanels(); render(); });
  selDisplay.addEventListener("change", () => { state.display = selDisplay.value; buildPanels(); render(); });
  selZoom.addEventListener("change", () => { state.zoom = parseFloat(selZoom.value); buildPanels(); render(); });
  inLevels.addEventListener("change", () => {
    state.levels = inLevels.value.split(/[,; ]+/).map(parseFloat).filter((v) => isFinite(v) && v > 0).sort((p, q) => p - q);
    render();
  });
  inMin.addEventListener("change", () => { state.washMin = parseFloat(inMin.value) || 0; render(); });
  inMax.addEventListener("change", () => { state.washMax = parseFloat(inMax.value) || maxDose; render(); });
  inOpacity.addEventListener("input", () => { state.opacity = parseFloat(inOpacity.value); render(); });
  inDiff.addEventListener("change", () => { state.diffRange = Math.max(0.1, parseFloat(inDiff.value) || 1); render(); });

  // --------------------------------------------------------------- drawing
  // Marching squares on voxel centres: cell (c, r) has corners v0 (c, r), v1 (c+1, r), v2 (c+1, r+1), v3 (c, r+1);
  // edges 0 top, 1 right, 2 bottom, 3 left; the crossing is interpolated linearly along the edge.
  const CASES = [[], [[3, 0]], [[0, 1]], [[3, 1]], [[1, 2]], [[3, 0], [1, 2]], [[0, 2]], [[3, 2]],
                 [[2, 3]], [[0, 2]], [[0, 1], [2, 3]], [[1, 2]], [[1, 3]], [[0, 1]], [[0, 3]], []];
  function contour(ctx, P, value, level) {
    const sx = P.dc * state.zoom, sy = P.dr * state.zoom;
    const frac = (a, b) => (level - a) / (b - a);
    ctx.beginPath();
    for (let r = 0; r < P.nr - 1; r++) {
      for (let c = 0; c < P.nc - 1; c++) {
        const v0 = value(c, r), v1 = value(c + 1, r), v2 = value(c + 1, r + 1), v3 = value(c, r + 1);
        const id = (v0 >= level) | ((v1 >= level) << 1) | ((v2 >= level) << 2) | ((v3 >= level) << 3);
        if (id === 0 || id === 15) continue;
        const pt = (e) => {
          if (e === 0) return [c + frac(v0, v1), r];
          if (e === 1) return [c + 1, r + frac(v1, v2)];
          if (e === 2) return [c + frac(v3, v2), r + 1];
          return [c, r + frac(v0, v3)];
        };
        for (const [e1, e2] of CASES[id]) {
          const p1 = pt(e1), p2 = pt(e2);
          ctx.moveTo((p1[0] + 0.5) * sx, (p1[1] + 0.5) * sy);
          ctx.lineTo((p2[0] + 0.5) * sx, (p2[1] + 0.5) * sy);
        }
      }
    }
    ctx.stroke();
  }

  function drawView(entry) {
    const { canvas, plane, panel } = entry;
    const P = PLANES[plane];
    const s = state.slice[plane];
    const plan = DOC.plans[panel.plan];
    const other = panel.kind === "diff" ? DOC.plans[panel.other] : null;
    const an = DOC.anatomies[plan.anatomy];
    const img = new ImageData(P.nc, P.nr);
    const px = img.data;
    const idxOf = new Int32Array(P.nc * P.nr);
    for (let r = 0; r < P.nr; r++) {
      for (let c = 0; c < P.nc; c++) {
        const v = P.voxel(c, r, s);
        const idx = flat(v[0], v[1], v[2]);
        idxOf[r * P.nc + c] = idx;
        const g = Math.min(255, (an.densityQ[idx] * an.density_scale / 1.8) * 255);
        let col = [g, g, g];
        let alpha = 0;
        if (panel.kind === "diff" && plan.doseQ && other && other.doseQ) {
          const d = doseAt(plan, idx) - doseAt(other, idx);
          if (Math.abs(d) >= 0.02 * state.diffRange) { alpha = state.opacity; col = mapColour(DIVERGING, 0.5 + d / (2 * state.diffRange)); }
        } else if (plan.doseQ) {
          const d = doseAt(plan, idx);
          if (d >= state.washMin && d > 0) {
            alpha = state.opacity;
            col = mapColour(TURBO, (d - state.washMin) / Math.max(1e-9, state.washMax - state.washMin));
          }
        }
        const o = 4 * (r * P.nc + c);
        px[o] = g + alpha * (col[0] - g); px[o + 1] = g + alpha * (col[1] - g); px[o + 2] = g + alpha * (col[2] - g); px[o + 3] = 255;
      }
    }
    const off = document.createElement("canvas");
    off.width = P.nc; off.height = P.nr;
    off.getContext("2d").putImageData(img, 0, 0);
    const ctx = canvas.getContext("2d");
    ctx.imageSmoothingEnabled = false;
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    ctx.drawImage(off, 0, 0, canvas.width, canvas.height);
    ctx.lineWidth = 1.5;
    if (panel.kind !== "diff" && plan.doseQ) {
      const value = (c, r) => plan.doseQ[idxOf[r * P.nc + c]] * plan.scale_gy;
      for (const L of state.levels) { ctx.strokeStyle = levelColour(L); contour(ctx, P, value, L); }
    }
    ctx.lineWidth = 1.2;
    for (const name of structureNames) {
      const st = an.byName[name];
      if (!st || !state.shown.has(name)) continue;
      ctx.strokeStyle = st.colour;
      contour(ctx, P, (c, r) => inMask(st, idxOf[r * P.nc + c]), 0.5);
    }
    if (state.cursor && !state.only) {
      const [cc, cr] = P.cr(state.cursor);
      ctx.strokeStyle = "rgba(255,255,255,0.8)";
      ctx.lineWidth = 1;
      ctx.setLineDash([3, 3]);
      ctx.beginPath();
      const x = (cc + 0.5) * P.dc * state.zoom, y = (cr + 0.5) * P.dr * state.zoom;
      ctx.moveTo(x, 0); ctx.lineTo(x, canvas.height); ctx.moveTo(0, y); ctx.lineTo(canvas.width, y);
      ctx.stroke();
      ctx.setLineDash([]);
    }
  }

  function sliceLabel(name) {
    const P = PLANES[name];
    const n = AXIS_N[P.axis];
    const v = [0, 0, 0];
    v[P.axis] = state.slice[name];
    return `slice ${state.slice[name]} of 0-${n - 1}, ${AXIS_NAME[P.axis]} = ${worldMm(v)[P.axis].toFixed(1)} mm`;
  }

  function readout() {
    const out = { cursor: state.cursor, position_mm: null, dose_gy: {}, difference_gy: null, inside: [] };
    if (!state.cursor) return out;
    const v = state.cursor;
    const idx = flat(v[0], v[1], v[2]);
    out.position_mm = worldMm(v).map((x) => Math.round(x * 100) / 100);
    const shownPlans = state.display === "single" ? [state.a] : [state.a, state.b];
    for (const n of shownPlans) { const p = DOC.plans[n]; out.dose_gy[p.label] = p.doseQ ? doseAt(p, idx) : null; }
    if (state.display === "diff" && DOC.plans[state.a].doseQ && DOC.plans[state.b].doseQ) {
      out.difference_gy = doseAt(DOC.plans[state.a], idx) - doseAt(DOC.plans[state.b], idx);
    }
    const an = DOC.anatomies[DOC.plans[state.a].anatomy];
    out.inside = an.structures.filter((s) => inMask(s, idx)).map((s) => s.name);
    return out;
  }

  function showReadout(ro) {
    const box = document.getElementById("readout");
    if (!ro.cursor) { box.textContent = "move the mouse over a slice"; return; }
    const lines = [`voxel (i, j, k) = (${ro.cursor.join(", ")})`,
                   `x, y, z = ${ro.position_mm.map((x) => x.toFixed(1)).join(", ")} mm`];
    for (const [label, d] of Object.entries(ro.dose_gy)) lines.push(`${label}: ${d === null ? "no dose" : d.toFixed(2) + " Gy"}`);
    if (ro.difference_gy !== null) lines.push(`difference: ${ro.difference_gy >= 0 ? "+" : ""}${ro.difference_gy.toFixed(2)} Gy`);
    lines.push(`inside: ${ro.inside.length ? ro.inside.join(", ") : "(none)"}`);
    box.textContent = lines.join("\n");
  }

  function drawDvh() {
    const ctx = dvhCanvas.getContext("2d");
    const W = dvhCanvas.width, H = dvhCanvas.height, L = 44, R = 10, T = 10, B = 34;
    ctx.clearRect(0, 0, W, H);
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, W, H);
    const axis = DOC.dvh_axis_gy;
    const dmax = axis[axis.length - 1];
    const X = (d) => L + (W - L - R) * d / dmax, Y = (v) => T + (H - T - B) * (1 - v / 100);
    ctx.strokeStyle = "#ccc"; ctx.fillStyle = "#222"; ctx.font = "11px sans-serif"; ctx.lineWidth = 1;
    const step = dmax > 40 ? 10 : dmax > 15 ? 5 : 1;
    ctx.beginPath();
    for (let d = 0; d <= dmax; d += step) { ctx.moveTo(X(d), T); ctx.lineTo(X(d), H - B); ctx.fillText(String(d), X(d) - 6, H - B + 13); }
    for (let v = 0; v <= 100; v += 20) { ctx.moveTo(L, Y(v)); ctx.lineTo(W - R, Y(v)); ctx.fillText(String(v), L - 24, Y(v) + 4); }
    ctx.stroke();
    ctx.fillText("dose (Gy)", W / 2 - 20, H - 4);
    ctx.save(); ctx.translate(11, H / 2 + 40); ctx.rotate(-Math.PI / 2); ctx.fillText("volume (%) >= dose", 0, 0); ctx.restore();
    const shownPlans = state.display === "single" ? [state.a] : [state.a, state.b];
    const dashes = [[], [7, 4], [2, 3]];
    const legend = [];
    shownPlans.forEach((n, m) => {
      const p = DOC.plans[n];
      if (!p.dvh) return;
      ctx.setLineDash(dashes[m % dashes.length]);
      ctx.lineWidth = 1.8;
      legend.push(`${m === 0 ? "solid" : "dashed"}: ${p.label}`);
      for (const name of structureNames) {
        if (!state.dvh.has(name) || !p.dvh[name]) continue;
        ctx.strokeStyle = structureColour[name];
        ctx.beginPath();
        p.dvh[name].forEach((v, q) => (q ? ctx.lineTo(X(axis[q]), Y(v)) : ctx.moveTo(X(axis[q]), Y(v))));
        ctx.stroke();
      }
    });
    ctx.setLineDash([]);
    const iso = state.levels.map((Lv) => `<span style="color:${levelColour(Lv)}">&#9632;</span> ${Lv} Gy`).join(" ");
    const bar = (stops) => `<span class="bar" style="background:linear-gradient(to right,${stops.map(rgb).join(",")})"></span>`;
    document.getElementById("legend").innerHTML = "DVH " + (legend.length ? legend.join("; ") : "(no dose in this file)") +
      (state.display === "diff"
        ? `<br>difference: -${state.diffRange} Gy ${bar(DIVERGING)} +${state.diffRange} Gy (blue: plan lower, red: plan higher)`
        : `<br>dose wash: ${state.washMin} Gy ${bar(TURBO)} ${state.washMax} Gy<br>isodose lines: ` + iso);
  }

  function render() {
    for (const name of PLANE_NAMES) labels[name].textContent = sliceLabel(name);
    for (const entry of canvases) drawView(entry);
    drawDvh();
    const ro = readout();
    showReadout(ro);
    state.renders += 1;
    document.getElementById("view-state").textContent = JSON.stringify({
      ready: true, renders: state.renders, display: state.display, a: state.a, b: state.b, zoom: state.zoom,
      isodose_gy: state.levels, outlined: structureNames.filter((n) => state.shown.has(n)),
      slices: { ...state.slice }, labels: Object.fromEntries(PLANE_NAMES.map((n) => [n, labels[n].textContent])),
      readout: ro, readout_text: document.getElementById("readout").textContent,
      canvases: canvases.map((e) => ({ id: e.canvas.id, width: e.canvas.width, height: e.canvas.height })),
    });
  }

  // --------------------------------------------------------------- URL fragment: drive the page like a user
  function applyFragment() {
    const q = new URLSearchParams(location.hash.replace(/^#/, ""));
    const fire = (input, type, value) => { input.value = value; input.dispatchEvent(new Event(type, { bubbles: true })); };
    if (q.has("zoom")) fire(selZoom, "change", q.get("zoom"));
    if (q.has("a")) fire(selA, "change", q.get("a"));
    if (q.has("b")) fire(selB, "change", q.get("b"));
    if (q.has("display")) fire(selDisplay, "change", q.get("display"));
    if (q.has("isodose")) fire(inLevels, "change", q.get("isodose"));
    if (q.has("structures")) {
      const keep = new Set(q.get("structures").split(","));
      for (const cb of structDiv.querySelectorAll("input[type=checkbox]")) {
        if (cb.checked !== keep.has(cb.dataset.structure)) { cb.checked = keep.has(cb.dataset.structure); cb.dispatchEvent(new Event("change")); }
      }
    }
    if (q.has("only")) { state.only = q.get("only"); document.body.classList.add("only"); }
    for (const name of PLANE_NAMES) if (q.has(name)) fire(sliders[name], "input", q.get(name));
    if (q.has("cursor")) {
      const v = q.get("cursor").split(",").map((t) => parseInt(t, 10));
      fire(sliders.axial, "input", String(v[2]));
      const entry = canvases.find((e) => e.plane === "axial");
      const P = PLANES.axial;
      const rect = entry.canvas.getBoundingClientRect();
      const [c, r] = P.cr(v);
      entry.canvas.dispatchEvent(new MouseEvent("mousemove", {
        clientX: rect.left + ((c + 0.5) * P.dc * state.zoom) * rect.width / entry.canvas.width,
        clientY: rect.top + ((r + 0.5) * P.dr * state.zoom) * rect.height / entry.canvas.height, bubbles: true }));
    }
    if (state.only) {
      for (const e of canvases) if (e !== canvases.find((x) => x.plane === state.only)) e.canvas.style.display = "none";
    }
  }

  selDisplay.value = state.display;
  buildPanels();
  render();
  applyFragment();
  window.addEventListener("hashchange", applyFragment);
})().catch((err) => {
  document.getElementById("app").textContent = "simsbrt view: could not show the data: " + err;
  document.getElementById("view-state").textContent = JSON.stringify({ ready: false, error: String(err) });
});
