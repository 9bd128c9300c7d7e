package org.memsr.demo;

import android.content.Context;
import android.graphics.Bitmap;
import android.graphics.Canvas;
import android.graphics.Color;
import android.graphics.Matrix;
import android.graphics.Paint;
import android.graphics.RectF;
import android.util.AttributeSet;
import android.view.GestureDetector;
import android.view.MotionEvent;
import android.view.ScaleGestureDetector;
import android.view.View;

/**
 * Before/after comparison: both images are drawn over the same content area (the "after" image's size), the
 * "before" one left of a draggable divider and the "after" one right of it. Pinch zooms about the fingers, one
 * finger pans, double tap resets. Before is drawn with bilinear filtering - what plain resizing would give.
 */
public class SplitView extends View {
    private Bitmap before;
    private Bitmap after;
    private String beforeLabel = "before";
    private String afterLabel = "after";
    private final Matrix view = new Matrix();      // content -> screen
    private float split = 0.5f;                     // divider position, fraction of the width
    private boolean draggingDivider;
    private final Paint bitmapPaint = new Paint(Paint.FILTER_BITMAP_FLAG);
    private final Paint linePaint = new Paint(Paint.ANTI_ALIAS_FLAG);
    private final Paint textPaint = new Paint(Paint.ANTI_ALIAS_FLAG);
    private final ScaleGestureDetector scaler;
    private final GestureDetector gestures;
    private final Matrix tmp = new Matrix();

    public SplitView(Context context, AttributeSet attrs) {
        super(context, attrs);
        float dp = getResources().getDisplayMetrics().density;
        linePaint.setColor(Color.WHITE);
        linePaint.setStrokeWidth(2 * dp);
        textPaint.setColor(Color.WHITE);
        textPaint.setTextSize(14 * dp);
        textPaint.setShadowLayer(2 * dp, 0, 0, Color.BLACK);
        scaler = new ScaleGestureDetector(context, new ScaleGestureDetector.SimpleOnScaleGestureListener() {
            @Override
            public boolean onScale(ScaleGestureDetector d) {
                view.postScale(d.getScaleFactor(), d.getScaleFactor(), d.getFocusX(), d.getFocusY());
                invalidate();
                return true;
            }
        });
        gestures = new GestureDetector(context, new GestureDetector.SimpleOnGestureListener() {
            @Override
            public boolean onScroll(MotionEvent e1, MotionEvent e2, float dx, float dy) {
                if (!draggingDivider) {
                    view.postTranslate(-dx, -dy);
                    invalidate();
                }
                return true;
            }

            @Override
            public boolean onDoubleTap(MotionEvent e) {
                fit();
                return true;
            }
        });
    }

    /** Show a pair; either may be null. The content area is the after image's size (else the before's). */
    public void setImages(Bitmap before, String beforeLabel, Bitmap after, String afterLabel) {
        this.before = before;
        this.after = after;
        this.beforeLabel = beforeLabel;
        this.afterLabel = afterLabel;
        fit();
    }

    private float contentWidth() {
        return after != null ? after.getWidth() : before != null ? before.getWidth() : 1;
    }

    private float contentHeight() {
        return after != null ? after.getHeight() : before != null ? before.getHeight() : 1;
    }

    private void fit() {
        view.setRectToRect(new RectF(0, 0, contentWidth(), contentHeight()),
                new RectF(0, 0, Math.max(1, getWidth()), Math.max(1, getHeight())), Matrix.ScaleToFit.CENTER);
        invalidate();
    }

    @Override
    protected void onSizeChanged(int w, int h, int oldw, int oldh) {
        fit();
    }

    /** The content point (after-image pixels) at the centre of the view. */
    public float[] contentCentre() {
        Matrix inv = new Matrix();
        view.invert(inv);
        float[] p = {getWidth() / 2f, getHeight() / 2f};
        inv.mapPoints(p);
        return p;
    }

    @Override
    public boolean onTouchEvent(MotionEvent e) {
        float divider = split * getWidth();
        float grab = 24 * getResources().getDisplayMetrics().density;
        switch (e.getActionMasked()) {
            case MotionEvent.ACTION_DOWN:
                draggingDivider = Math.abs(e.getX() - divider) < grab;
                break;
            case MotionEvent.ACTION_MOVE:
                if (draggingDivider && e.getPointerCount() == 1) {
                    split = Math.max(0f, Math.min(1f, e.getX() / Math.max(1, getWidth())));
                    invalidate();
                }
                break;
            case MotionEvent.ACTION_UP:
            case MotionEvent.ACTION_CANCEL:
                draggingDivider = false;
                break;
            default:
                break;
        }
        scaler.onTouchEvent(e);
        gestures.onTouchEvent(e);
        return true;
    }

    @Override
    protected void onDraw(Canvas canvas) {
        float divider = split * getWidth();
        if (before != null) {
            canvas.save();
            canvas.clipRect(0, 0, after != null ? divider : getWidth(), getHeight());
            tmp.set(view);
            tmp.preScale(contentWidth() / before.getWidth(), contentHeight() / before.getHeight());
            canvas.drawBitmap(before, tmp, bitmapPaint);
            canvas.restore();
        }
        if (after != null) {
            canvas.save();
            canvas.clipRect(divider, 0, getWidth(), getHeight());
            canvas.drawBitmap(after, view, bitmapPaint);
            canvas.restore();
            canvas.drawLine(divider, 0, divider, getHeight(), linePaint);
            float pad = textPaint.getTextSize();
            canvas.drawText(beforeLabel, pad, getHeight() - pad, textPaint);
            canvas.drawText(afterLabel, getWidth() - pad - textPaint.measureText(afterLabel), getHeight() - pad,
                    textPaint);
        }
    }
}
