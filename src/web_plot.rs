//! Charts drawn by plotters on the page's canvases (the probe's decoded profile). Text
//! from the user's file (gene names) is drawn as canvas text, never parsed as HTML.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters_canvas::CanvasBackend;
use wasm_bindgen::prelude::*;

const DECODED: RGBColor = RGBColor(0x2f, 0x6f, 0xde);
const CELLS: RGBColor = RGBColor(0xf7, 0x90, 0x09);

/// Draws the probe's profile as horizontal bars: for each gene (top to bottom),
/// `decoded[i]` (expected counts at the probe) and, when `cells` has the same length,
/// the nearest cells' mean beside it. The canvas's own width and height are used.
#[wasm_bindgen]
pub fn draw_profile(
    canvas: web_sys::HtmlCanvasElement,
    genes: Vec<String>,
    decoded: Vec<f32>,
    cells: Vec<f32>,
) -> Result<(), JsError> {
    let n = genes.len();
    if decoded.len() != n || (!cells.is_empty() && cells.len() != n) {
        return Err(JsError::new(&format!(
            "draw_profile: {n} genes, {} decoded values, {} cell values",
            decoded.len(),
            cells.len()
        )));
    }
    let backend = CanvasBackend::with_canvas_object(canvas)
        .ok_or_else(|| JsError::new("draw_profile: the canvas has no 2D context"))?;
    let root = backend.into_drawing_area();
    let fail = |e: &dyn std::fmt::Display| JsError::new(&format!("draw_profile: {e}"));
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    if n == 0 {
        return root.present().map_err(|e| fail(&e));
    }
    let top = decoded
        .iter()
        .chain(&cells)
        .copied()
        .filter(|v| v.is_finite())
        .fold(0f32, f32::max)
        .max(1e-6)
        * 1.08;
    let (w, _) = root.dim_in_pixel();
    let label_px = (w as f32 * 0.28).clamp(60.0, 160.0) as u32;
    let mut chart = ChartBuilder::on(&root)
        .margin(6)
        .x_label_area_size(22)
        .y_label_area_size(label_px)
        .build_cartesian_2d(0f32..top, 0f32..n as f32)
        .map_err(|e| fail(&e))?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .x_labels(5)
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(|e| fail(&e))?;
    // Gene names at the row centres, right-aligned against the plot.
    let style = TextStyle::from(("sans-serif", 12).into_font())
        .color(&BLACK)
        .pos(Pos::new(HPos::Right, VPos::Center));
    for (i, name) in genes.iter().enumerate() {
        let (_, py) = chart.backend_coord(&(0.0, (n - i) as f32 - 0.5));
        let (px, _) = chart.backend_coord(&(0.0, 0.0));
        let shown = if name.chars().count() > 18 {
            format!("{}…", name.chars().take(17).collect::<String>())
        } else {
            name.clone()
        };
        root.draw(&Text::new(shown, (px - 4, py), style.clone()))
            .map_err(|e| fail(&e))?;
    }
    let two = !cells.is_empty();
    let rows = (0..n).map(|i| {
        let y1 = (n - i) as f32 - 0.12;
        let y0 = (n - i - 1) as f32 + 0.12;
        let mid = (y0 + y1) / 2.0;
        (i, y0, mid, y1)
    });
    chart
        .draw_series(rows.clone().map(|(i, y0, mid, y1)| {
            let v = decoded[i].max(0.0);
            let (a, b) = if two { (mid, y1) } else { (y0, y1) };
            Rectangle::new([(0.0, a), (v, b)], DECODED.filled())
        }))
        .map_err(|e| fail(&e))?;
    if two {
        chart
            .draw_series(rows.map(|(i, y0, mid, _)| {
                Rectangle::new([(0.0, y0), (cells[i].max(0.0), mid)], CELLS.filled())
            }))
            .map_err(|e| fail(&e))?;
    }
    root.present().map_err(|e| fail(&e))
}
