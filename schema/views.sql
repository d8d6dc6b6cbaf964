-- Publication views: what OGC API - Features serves (pygeoapi-config.yml lists them).
--
-- Everything published lives in the schema "pub", so that it can be dropped and rebuilt
-- in one statement (mis.catalogue.views.install) and never confuses the models/migration
-- comparison (alembic only compares tables of the default schema).
--
-- Conventions (GeoSciML-Lite style):
--   * one row per feature, an integer "id", one world geometry "geom" (EPSG:4326,
--     Z = elevation in metres) or none (vocabularies, surveys);
--   * every classification appears twice: a human-readable label ("lithology") and
--     the concept URI beside it ("lithology_uri");
--   * lengths and depths carry their unit in the name (boreholeLength_m, depth_m);
--   * parents are named and referenced: a plug has "drillcore" (the hole id) and
--     "drillcore_id" (its feature id in the drillcores collection), and so on upwards;
--   * every feature also carries its own id as a property of that name ("plug_id" of a
--     plug, "grain_id" of a grain): clients such as QGIS 3.22 number features themselves
--     and show no feature id, and with it a layer joins its children by one field name.
--   * grains and roxels are big tables: their views use only joins the planner can turn
--     into index lookups, and name mineral classes by their short symbol (IMA notation
--     "Ccp", else the label) so that filters such as mineral = 'Ccp' stay readable.

DROP SCHEMA IF EXISTS pub CASCADE;
CREATE SCHEMA pub;
COMMENT ON SCHEMA pub IS 'MIS publication views (OGC API - Features); rebuilt by mis.catalogue.views.install';

-- ------------------------------------------------------------------ helper functions
-- Short name of a class: the notation (IMA symbol, code) if it has one, else the label.
CREATE FUNCTION pub.symbol(notation text, pref_label text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN coalesce(nullif(notation, ''), pref_label);

-- Every concept at or below a concept in the (poly)hierarchy: "all igneous rocks".
CREATE FUNCTION pub.narrower(concept text) RETURNS SETOF text
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
    WITH RECURSIVE tree(uri) AS (
        SELECT concept
        UNION
        SELECT b.concept_uri FROM public.concept_broader b JOIN tree t ON b.broader_uri = t.uri
    )
    SELECT uri FROM tree
$$;

-- The ordered class names of each segmentation run: key k of every composition array.
CREATE VIEW pub.run_class_names AS
SELECT rc.run_id,
       array_agg(pub.symbol(c.notation, c.pref_label) ORDER BY rc.class_index) AS names,
       array_agg(c.uri ORDER BY rc.class_index) AS uris
FROM public.run_class rc
JOIN public.concept c ON c.uri = rc.concept_uri
GROUP BY rc.run_id;

-- ------------------------------------------------------------------ deposits
CREATE VIEW pub.deposits AS
SELECT d.id,
       d.id AS deposit_id,
       d.name,
       ot.pref_label AS "occurrenceType",
       d.occurrence_type_uri AS "occurrenceType_uri",
       coalesce(dm.pref_label, d.deposit_model_note) AS "depositModel",
       d.deposit_model_uri AS "depositModel_uri",
       com.labels AS commodities,
       com.uris AS commodity_uris,
       d.country,
       d.description,
       d.source,
       (SELECT count(*) FROM public.drillcore h WHERE h.deposit_id = d.id)::integer AS "drillcoreCount",
       d.updated_at AS updated,
       d.footprint AS geom
FROM public.deposit d
LEFT JOIN public.concept ot ON ot.uri = d.occurrence_type_uri
LEFT JOIN public.concept dm ON dm.uri = d.deposit_model_uri
LEFT JOIN LATERAL (
    SELECT string_agg(c.pref_label, ', ' ORDER BY dc.rank) AS labels,
           string_agg(c.uri, ' ' ORDER BY dc.rank) AS uris
    FROM public.deposit_commodity dc JOIN public.concept c ON c.uri = dc.commodity_uri
    WHERE dc.deposit_id = d.id
) com ON true;
COMMENT ON VIEW pub.deposits IS 'Deposits (~ ERML MineralOccurrence): footprint polygon or point, EPSG:4326';

-- ------------------------------------------------------------------ drillcores
-- GeoSciML-Lite BoreholeView property names where one exists.
CREATE VIEW pub.drillcores AS
SELECT h.id,
       h.id AS drillcore_id,
       h.name,
       d.name AS deposit,
       h.deposit_id,
       h.purpose,
       CASE WHEN h.dip = -90 THEN 'vertical' WHEN h.dip < 0 THEN 'inclined down'
            WHEN h.dip > 0 THEN 'inclined up' ELSE 'horizontal' END AS "inclinationType",
       dm.pref_label AS "drillingMethod",
       h.drilling_method_uri AS "drillingMethod_uri",
       h.operator,
       h.start_date AS "drillStartDate",
       h.end_date AS "drillEndDate",
       h.core_custodian AS "boreholeMaterialCustodian",
       h.length_m AS "boreholeLength_m",
       h.elevation_m,
       h.elevation_srs,
       h.elevation_reference AS "elevationReference",
       h.dip AS dip_deg,
       h.azimuth AS azimuth_deg,
       h.azimuth_reference AS "azimuthReference",
       h.magnetic_declination_deg AS "magneticDeclination_deg",
       h.collar_x,
       h.collar_y,
       'EPSG:' || h.collar_epsg AS collar_srs,
       CASE WHEN h.local_epsg IS NULL THEN NULL ELSE 'EPSG:' || h.local_epsg END AS "desurveySrs",
       h.desurvey_method AS "desurveyMethod",
       (SELECT count(*) FROM public.plug p WHERE p.drillcore_id = h.id)::integer AS "plugCount",
       h.updated_at AS updated,
       h.collar AS geom
FROM public.drillcore h
JOIN public.deposit d ON d.id = h.deposit_id
LEFT JOIN public.concept dm ON dm.uri = h.drilling_method_uri;
COMMENT ON VIEW pub.drillcores IS 'Drill cores (~ GeoSciML-Lite BoreholeView): collar PointZ, EPSG:4326, Z = elevation m';

CREATE VIEW pub.drillcore_traces AS
SELECT h.id,
       h.id AS drillcore_id,
       h.name,
       d.name AS deposit,
       h.deposit_id,
       h.length_m AS "boreholeLength_m",
       h.desurvey_method AS "desurveyMethod",
       CASE WHEN h.local_epsg IS NULL THEN NULL ELSE 'EPSG:' || h.local_epsg END AS "desurveySrs",
       (SELECT count(*) FROM public.survey_station s WHERE s.drillcore_id = h.id)::integer AS "surveyCount",
       h.start_date AS "drillStartDate",
       h.end_date AS "drillEndDate",
       h.trace AS geom
FROM public.drillcore h
JOIN public.deposit d ON d.id = h.deposit_id;
COMMENT ON VIEW pub.drillcore_traces IS 'Drill core traces: desurveyed LineStringZ (minimum curvature), EPSG:4326, Z = elevation m';

CREATE VIEW pub.surveys AS
SELECT s.id,
       s.id AS survey_id,
       h.name AS drillcore,
       s.drillcore_id,
       d.name AS deposit,
       h.deposit_id,
       s.depth_m,
       s.dip AS dip_deg,
       s.azimuth AS azimuth_deg
FROM public.survey_station s
JOIN public.drillcore h ON h.id = s.drillcore_id
JOIN public.deposit d ON d.id = h.deposit_id;
COMMENT ON VIEW pub.surveys IS 'Downhole survey stations: depth along hole, dip (negative down) and azimuth';

-- ------------------------------------------------------------------ plugs
CREATE VIEW pub.plugs AS
SELECT p.id,
       p.id AS plug_id,
       p.name,
       h.name AS drillcore,
       p.drillcore_id,
       d.name AS deposit,
       h.deposit_id,
       p.from_m,
       p.to_m,
       (p.from_m + p.to_m) / 2 AS depth_m,
       st.pref_label AS "sampleType",
       p.sample_type_uri AS "sampleType_uri",
       li.pref_label AS lithology,
       p.lithology_uri AS lithology_uri,
       p.preparation,
       p.description,
       (SELECT count(*) FROM public.image i WHERE i.plug_id = p.id)::integer AS "imageCount",
       CASE WHEN EXISTS (SELECT 1 FROM public.image i WHERE i.plug_id = p.id)
            THEN '/iiif/presentation/plug/' || p.id || '/manifest.json' END AS "iiifManifest",
       p.updated_at AS updated,
       p.position AS geom
FROM public.plug p
JOIN public.drillcore h ON h.id = p.drillcore_id
JOIN public.deposit d ON d.id = h.deposit_id
JOIN public.concept st ON st.uri = p.sample_type_uri
LEFT JOIN public.concept li ON li.uri = p.lithology_uri;
COMMENT ON VIEW pub.plugs IS 'Samples (plugs, sections, core photos) at a depth interval; PointZ at mid-depth on the trace';

-- ------------------------------------------------------------------ rocks
CREATE VIEW pub.rocks AS
SELECT r.id,
       r.id AS rock_id,
       p.name AS plug,
       r.plug_id,
       h.name AS drillcore,
       p.drillcore_id,
       p.from_m,
       p.to_m,
       (p.from_m + p.to_m) / 2 AS depth_m,
       r.run_id,
       li.pref_label AS lithology,
       r.lithology_uri,
       r.lithology_source AS "lithologySource",
       (SELECT jsonb_object_agg(pub.symbol(c.notation, c.pref_label), rc.proportion_area)
          FROM public.rock_constituent rc JOIN public.concept c ON c.uri = rc.mineral_uri
         WHERE rc.rock_id = r.id) AS composition,
       (SELECT jsonb_object_agg(pub.symbol(c.notation, c.pref_label), rc.proportion_wt)
          FROM public.rock_constituent rc JOIN public.concept c ON c.uri = rc.mineral_uri
         WHERE rc.rock_id = r.id AND rc.proportion_wt IS NOT NULL) AS "compositionWt",
       (SELECT string_agg(rc.mineral_uri, ' ' ORDER BY rc.proportion_area DESC)
          FROM public.rock_constituent rc WHERE rc.rock_id = r.id) AS mineral_uris,
       r.grain_size AS "grainSize",
       p.position AS geom
FROM public.rock r
JOIN public.plug p ON p.id = r.plug_id
JOIN public.drillcore h ON h.id = p.drillcore_id
LEFT JOIN public.concept li ON li.uri = r.lithology_uri;
COMMENT ON VIEW pub.rocks IS 'Rock of a plug (~ GeoSciML RockMaterial): lithology and modal composition (area fractions by mineral symbol)';

-- ------------------------------------------------------------------ grains
CREATE VIEW pub.grains AS
SELECT g.id,
       g.id AS grain_id,
       g.run_id,
       sr.image_id,
       i.plug_id,
       g.label,
       pub.symbol(m.notation, m.pref_label) AS mineral,
       m.pref_label AS "mineralName",
       m.uri AS mineral_uri,
       g.mineral_id,
       g.area_um2,
       g.perimeter_um,
       g.ecd_um,
       g.major_axis_um,
       g.minor_axis_um,
       g.orientation_deg,
       g.aspect_ratio,
       g.solidity,
       g.form_factor,
       g.roundness,
       g.feret_max_um,
       g.feret_min_um,
       g.mean_probability,
       g.touches_border,
       g.centroid_x_um,
       g.centroid_y_um,
       array_to_string(g.chunk_keys, ' ') AS "chunkKeys",
       '[' || w.y0 || ',' || w.x0 || ',' || (w.y1 - w.y0) || ',' || (w.x1 - w.x0) || ']' AS "pixelWindow",
       '/iiif/3/' || sr.image_id || '/' || w.x0 || ',' || w.y0 || ',' || (w.x1 - w.x0) || ','
           || (w.y1 - w.y0) || '/max/0/default.png' AS "imageRegion",
       p.position AS geom
FROM public.grain g
JOIN public.concept m ON m.id = g.mineral_id
JOIN public.segmentation_run sr ON sr.id = g.run_id
JOIN public.image i ON i.id = sr.image_id
JOIN public.plug p ON p.id = i.plug_id
CROSS JOIN LATERAL (
    -- the grain's pixels: its outline's box (image um, pixel centres at index * pixel size)
    -- in level-0 pixels, whole pixels, inside the image
    SELECT greatest(0, floor(ST_XMin(b) / i.pixel_size_um + 0.5))::integer AS x0,
           greatest(0, floor(ST_YMin(b) / i.pixel_size_um + 0.5))::integer AS y0,
           least(i.shape[3], greatest(1, ceil(ST_XMax(b) / i.pixel_size_um + 0.5)))::integer AS x1,
           least(i.shape[2], greatest(1, ceil(ST_YMax(b) / i.pixel_size_um + 0.5)))::integer AS y1
    FROM (SELECT g.outline::box2d AS b) o
) w;
COMMENT ON VIEW pub.grains IS 'Segmented mineral grains: shape metrics in image micrometres; located at their plug';

-- ------------------------------------------------------------------ roxels
-- A roxel's composition as named fractions, the JSON text {"Ccp":0.86,"Qz":0.1}: f is the
-- roxel's real[] of fractions, k<n> the JSON key of class n of its run ('"Ccp":', written
-- once per run by the view); classes with a zero fraction are left out. Built by
-- concatenation, not by aggregation: the body is inlined into the view and costs about a
-- microsecond per roxel (unnest + jsonb_object_agg: four; a branch per class of the run,
-- in 4, 8 or 16: the unused ones cost too). Runs of more than 16 classes take
-- pub.named_fractions_any, the general (slower) form. Text, not json: the JSON is valid by
-- construction (keys by to_json, fractions are finite reals), and a cast to json would
-- parse every roxel's again, which costs as much as building it; the API knows composition
-- and pixelWindow as JSON (mis.api.provider.JSON_TEXT_COLUMNS). (STABLE, not IMMUTABLE:
-- concat_ws is STABLE, and PostgreSQL inlines only a body no more volatile than itself.)
CREATE FUNCTION pub.named_fractions_any(keys text[], f real[]) RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN '{' || coalesce((SELECT string_agg(u.key || u.fraction, ',' ORDER BY u.k)
                            FROM unnest(keys, f) WITH ORDINALITY AS u(key, fraction, k)
                            WHERE u.fraction > 0 AND u.key IS NOT NULL), '') || '}';

CREATE FUNCTION pub.named_fractions(keys text[], f real[],
    k1 text, k2 text, k3 text, k4 text, k5 text, k6 text, k7 text, k8 text,
    k9 text, k10 text, k11 text, k12 text, k13 text, k14 text, k15 text, k16 text) RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN CASE WHEN cardinality(f) <= 16 THEN '{' || CASE
        WHEN cardinality(f) <= 4 THEN concat_ws(',',
            CASE WHEN f[1] > 0::real THEN k1 || f[1]::text END,
            CASE WHEN f[2] > 0::real THEN k2 || f[2]::text END,
            CASE WHEN f[3] > 0::real THEN k3 || f[3]::text END,
            CASE WHEN f[4] > 0::real THEN k4 || f[4]::text END)
        WHEN cardinality(f) <= 8 THEN concat_ws(',',
            CASE WHEN f[1] > 0::real THEN k1 || f[1]::text END,
            CASE WHEN f[2] > 0::real THEN k2 || f[2]::text END,
            CASE WHEN f[3] > 0::real THEN k3 || f[3]::text END,
            CASE WHEN f[4] > 0::real THEN k4 || f[4]::text END,
            CASE WHEN f[5] > 0::real THEN k5 || f[5]::text END,
            CASE WHEN f[6] > 0::real THEN k6 || f[6]::text END,
            CASE WHEN f[7] > 0::real THEN k7 || f[7]::text END,
            CASE WHEN f[8] > 0::real THEN k8 || f[8]::text END)
        WHEN cardinality(f) <= 16 THEN concat_ws(',',
            CASE WHEN f[1] > 0::real THEN k1 || f[1]::text END,
            CASE WHEN f[2] > 0::real THEN k2 || f[2]::text END,
            CASE WHEN f[3] > 0::real THEN k3 || f[3]::text END,
            CASE WHEN f[4] > 0::real THEN k4 || f[4]::text END,
            CASE WHEN f[5] > 0::real THEN k5 || f[5]::text END,
            CASE WHEN f[6] > 0::real THEN k6 || f[6]::text END,
            CASE WHEN f[7] > 0::real THEN k7 || f[7]::text END,
            CASE WHEN f[8] > 0::real THEN k8 || f[8]::text END,
            CASE WHEN f[9] > 0::real THEN k9 || f[9]::text END,
            CASE WHEN f[10] > 0::real THEN k10 || f[10]::text END,
            CASE WHEN f[11] > 0::real THEN k11 || f[11]::text END,
            CASE WHEN f[12] > 0::real THEN k12 || f[12]::text END,
            CASE WHEN f[13] > 0::real THEN k13 || f[13]::text END,
            CASE WHEN f[14] > 0::real THEN k14 || f[14]::text END,
            CASE WHEN f[15] > 0::real THEN k15 || f[15]::text END,
            CASE WHEN f[16] > 0::real THEN k16 || f[16]::text END)
        END || '}'
    ELSE pub.named_fractions_any(keys, f) END;

-- The JSON keys of a run's classes ('"Ccp":', in class order; as an array and one by one,
-- which is cheaper to read per roxel than the array's n-th text) come from a LATERAL
-- subquery keyed on run_id, which PostgreSQL memoizes (one lookup per run, not per roxel).
-- dominantClass_id (the concept's integer id, what the table stores) lets the API turn
-- class filters into index conditions on roxel itself. The joins are LEFT joins although
-- every roxel has its class, run, image, plug and drill core (NOT NULL keys; a run's
-- roxels live in its partition): the rows are the same, and PostgreSQL drops a LEFT join
-- whose columns a query does not use, so that a count (numberMatched, resulttype=hits) or
-- the ids of an offset page under a filter on roxel's own columns (bbox, class, depth) is a
-- query on roxel alone, and a page joins only what its properties read (no plug or drill
-- core for the default ones). The API serves a lean default feature (pygeoapi-config.yml,
-- default_properties); every column here stays a queryable and can be asked for with
-- properties=.
CREATE VIEW pub.roxels AS
SELECT x.id,
       x.id AS roxel_id,
       x.run_id,
       sr.image_id,
       i.plug_id,
       p.drillcore_id,
       d.name AS drillcore,
       x.row,
       x.col,
       x.depth_m,
       pub.symbol(c.notation, c.pref_label) AS "dominantClass",
       c.pref_label AS "dominantClassName",
       c.uri AS "dominantClass_uri",
       x.dominant_class_id AS "dominantClass_id",
       x.dominant_fraction AS "dominantFraction",
       x.dominant_grain_id AS "dominantGrain_id",
       pub.named_fractions(n.keys, x.composition, n.k1, n.k2, n.k3, n.k4, n.k5, n.k6, n.k7, n.k8,
                           n.k9, n.k10, n.k11, n.k12, n.k13, n.k14, n.k15, n.k16) AS composition,
       i.store_uri AS "zarrStore",
       i.array_paths[1] AS "zarrArray",
       'c/0/' || (x.row * sr.roxel_size / i.chunks[2]) || '/' || (x.col * sr.roxel_size / i.chunks[3]) AS "chunkKey",
       '[' || x.row * sr.roxel_size || ',' || x.col * sr.roxel_size || ','
           || least(sr.roxel_size, i.shape[2] - x.row * sr.roxel_size) || ','
           || least(sr.roxel_size, i.shape[3] - x.col * sr.roxel_size) || ']' AS "pixelWindow",
       '/iiif/3/' || sr.image_id || '/' || x.col * sr.roxel_size || ',' || x.row * sr.roxel_size || ','
           || least(sr.roxel_size, i.shape[3] - x.col * sr.roxel_size) || ','
           || least(sr.roxel_size, i.shape[2] - x.row * sr.roxel_size) || '/max/0/default.png' AS "imageRegion",
       x.position AS geom
FROM public.roxel x
LEFT JOIN public.concept c ON c.id = x.dominant_class_id
LEFT JOIN public.segmentation_run sr ON sr.id = x.run_id
LEFT JOIN public.image i ON i.id = sr.image_id
LEFT JOIN public.plug p ON p.id = i.plug_id
LEFT JOIN public.drillcore d ON d.id = p.drillcore_id
LEFT JOIN LATERAL (
    SELECT keys, keys[1] AS k1, keys[2] AS k2, keys[3] AS k3, keys[4] AS k4, keys[5] AS k5, keys[6] AS k6, keys[7] AS k7, keys[8] AS k8,
           keys[9] AS k9, keys[10] AS k10, keys[11] AS k11, keys[12] AS k12, keys[13] AS k13, keys[14] AS k14, keys[15] AS k15, keys[16] AS k16
    FROM (SELECT array_agg(to_json(pub.symbol(k.notation, k.pref_label))::text || ':' ORDER BY rc.class_index) AS keys
          FROM public.run_class rc JOIN public.concept k ON k.uri = rc.concept_uri
          WHERE rc.run_id = x.run_id) a
) n ON true;
COMMENT ON VIEW pub.roxels IS 'Roxels (elementary rock cells): world PointZ, depth along hole, dominant class, composition as named fractions, raw zarr link';

-- ------------------------------------------------------------------ vocabularies
CREATE VIEW pub.concepts AS
SELECT c.id,
       c.id AS concept_id,
       c.uri,
       c.scheme,
       c.pref_label AS "prefLabel",
       c.notation,
       array_to_string(c.alt_labels, '; ') AS "altLabels",
       c.definition,
       (SELECT string_agg(bc.pref_label, '; ' ORDER BY bc.pref_label)
          FROM public.concept_broader b JOIN public.concept bc ON bc.uri = b.broader_uri
         WHERE b.concept_uri = c.uri) AS broader,
       (SELECT string_agg(b.broader_uri, ' ' ORDER BY b.broader_uri)
          FROM public.concept_broader b WHERE b.concept_uri = c.uri) AS broader_uris,
       c.properties
FROM public.concept c;
COMMENT ON VIEW pub.concepts IS 'SKOS concepts of every vocabulary (lithology, minerals, commodities, ...)';
