"""The catalogue schema: vocabulary, deposits, drillholes, plugs, images, runs, rocks, grains, roxels.

Revision ID: 0001
Revises:
Create Date: 2026-11-21 05:42:37.643922
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

from mis.catalogue import ddl

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    op.create_table('concept_scheme',
    sa.Column('key', sa.Text(), nullable=False),
    sa.Column('uri', sa.Text(), nullable=False),
    sa.Column('title', sa.Text(), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('source', sa.Text(), nullable=True),
    sa.Column('licence', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_concept_scheme')),
    sa.UniqueConstraint('uri', name=op.f('uq_concept_scheme_uri'))
    )
    op.create_table('concept',
    sa.Column('uri', sa.Text(), nullable=False),
    sa.Column('id', sa.Integer(), sa.Identity(always=False), nullable=False),
    sa.Column('scheme', sa.Text(), nullable=False),
    sa.Column('pref_label', sa.Text(), nullable=False),
    sa.Column('labels', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
    sa.Column('alt_labels', postgresql.ARRAY(sa.Text()), server_default='{}', nullable=False),
    sa.Column('notation', sa.Text(), nullable=True),
    sa.Column('definition', sa.Text(), nullable=True),
    sa.Column('properties', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
    sa.ForeignKeyConstraint(['scheme'], ['concept_scheme.key'], name=op.f('fk_concept_scheme_concept_scheme'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('uri', name=op.f('pk_concept')),
    sa.UniqueConstraint('id', name=op.f('uq_concept_id'))
    )
    op.create_index('ix_concept_notation_lower', 'concept', [sa.literal_column('lower(notation)')], unique=False)
    op.create_index(op.f('ix_concept_scheme'), 'concept', ['scheme'], unique=False)
    op.create_table('concept_broader',
    sa.Column('concept_uri', sa.Text(), nullable=False),
    sa.Column('broader_uri', sa.Text(), nullable=False),
    sa.CheckConstraint('concept_uri <> broader_uri', name=op.f('ck_concept_broader_not_self')),
    sa.ForeignKeyConstraint(['broader_uri'], ['concept.uri'], name=op.f('fk_concept_broader_broader_uri_concept'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['concept_uri'], ['concept.uri'], name=op.f('fk_concept_broader_concept_uri_concept'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('concept_uri', 'broader_uri', name=op.f('pk_concept_broader'))
    )
    op.create_index(op.f('ix_concept_broader_broader_uri'), 'concept_broader', ['broader_uri'], unique=False)
    op.create_geospatial_table('deposit',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('occurrence_type_uri', sa.Text(), nullable=True),
    sa.Column('deposit_model_uri', sa.Text(), nullable=True),
    sa.Column('deposit_model_note', sa.Text(), nullable=True),
    sa.Column('country', sa.Text(), nullable=True),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('source', sa.Text(), nullable=True),
    sa.Column('footprint', Geometry(srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("footprint IS NULL OR GeometryType(footprint) IN ('POLYGON', 'MULTIPOLYGON', 'POINT')", name=op.f('ck_deposit_footprint_type')),
    sa.CheckConstraint("name <> ''", name=op.f('ck_deposit_name_not_empty')),
    sa.CheckConstraint('footprint IS NULL OR ST_IsValid(footprint)', name=op.f('ck_deposit_footprint_valid')),
    sa.ForeignKeyConstraint(['deposit_model_uri'], ['concept.uri'], name=op.f('fk_deposit_deposit_model_uri_concept'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['occurrence_type_uri'], ['concept.uri'], name=op.f('fk_deposit_occurrence_type_uri_concept'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deposit')),
    sa.UniqueConstraint('name', name=op.f('uq_deposit_name'))
    )
    op.create_geospatial_index('idx_deposit_footprint', 'deposit', ['footprint'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_index(op.f('ix_deposit_deposit_model_uri'), 'deposit', ['deposit_model_uri'], unique=False)
    op.create_index(op.f('ix_deposit_occurrence_type_uri'), 'deposit', ['occurrence_type_uri'], unique=False)
    op.create_table('deposit_commodity',
    sa.Column('deposit_id', sa.BigInteger(), nullable=False),
    sa.Column('commodity_uri', sa.Text(), nullable=False),
    sa.Column('rank', sa.SmallInteger(), server_default='1', nullable=False),
    sa.ForeignKeyConstraint(['commodity_uri'], ['concept.uri'], name=op.f('fk_deposit_commodity_commodity_uri_concept'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['deposit_id'], ['deposit.id'], name=op.f('fk_deposit_commodity_deposit_id_deposit'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('deposit_id', 'commodity_uri', name=op.f('pk_deposit_commodity'))
    )
    op.create_index(op.f('ix_deposit_commodity_commodity_uri'), 'deposit_commodity', ['commodity_uri'], unique=False)
    op.create_geospatial_table('drillcore',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('deposit_id', sa.BigInteger(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('purpose', sa.Text(), nullable=True),
    sa.Column('collar', Geometry(geometry_type='POINTZ', srid=4326, dimension=3, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.Column('collar_x', sa.Double(), nullable=True),
    sa.Column('collar_y', sa.Double(), nullable=True),
    sa.Column('collar_epsg', sa.Integer(), server_default='4326', nullable=False),
    sa.Column('elevation_m', sa.Double(), nullable=False),
    sa.Column('elevation_reference', sa.Text(), server_default='ground surface', nullable=False),
    sa.Column('elevation_srs', sa.Text(), nullable=True),
    sa.Column('length_m', sa.Double(), nullable=False),
    sa.Column('dip', sa.Double(), server_default='-90', nullable=False),
    sa.Column('azimuth', sa.Double(), server_default='0', nullable=False),
    sa.Column('azimuth_reference', sa.Text(), server_default='true', nullable=False),
    sa.Column('magnetic_declination_deg', sa.Double(), nullable=True),
    sa.Column('drilling_method_uri', sa.Text(), nullable=True),
    sa.Column('start_date', sa.Date(), nullable=True),
    sa.Column('end_date', sa.Date(), nullable=True),
    sa.Column('operator', sa.Text(), nullable=True),
    sa.Column('core_custodian', sa.Text(), nullable=True),
    sa.Column('local_epsg', sa.Integer(), nullable=True),
    sa.Column('desurvey_method', sa.Text(), server_default='minimum_curvature', nullable=False),
    sa.Column('trace', Geometry(geometry_type='LINESTRINGZ', srid=4326, dimension=3, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("azimuth_reference <> 'magnetic' OR magnetic_declination_deg IS NOT NULL", name=op.f('ck_drillcore_magnetic_needs_declination')),
    sa.CheckConstraint("azimuth_reference IN ('true', 'grid', 'magnetic')", name=op.f('ck_drillcore_azimuth_reference')),
    sa.CheckConstraint("desurvey_method IN ('minimum_curvature', 'balanced_tangential', 'tangential')", name=op.f('ck_drillcore_desurvey_method')),
    sa.CheckConstraint("name <> ''", name=op.f('ck_drillcore_name_not_empty')),
    sa.CheckConstraint('azimuth IS NULL OR (azimuth >= 0 AND azimuth < 360)', name=op.f('ck_drillcore_azimuth_range')),
    sa.CheckConstraint('dip IS NULL OR (dip >= -90 AND dip <= 90)', name=op.f('ck_drillcore_dip_range')),
    sa.CheckConstraint('end_date IS NULL OR start_date IS NULL OR end_date >= start_date', name=op.f('ck_drillcore_dates_order')),
    sa.CheckConstraint('length_m > 0', name=op.f('ck_drillcore_length_positive')),
    sa.CheckConstraint('magnetic_declination_deg IS NULL OR (magnetic_declination_deg >= -180 AND magnetic_declination_deg <= 180)', name=op.f('ck_drillcore_declination_range')),
    sa.ForeignKeyConstraint(['deposit_id'], ['deposit.id'], name=op.f('fk_drillcore_deposit_id_deposit'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['drilling_method_uri'], ['concept.uri'], name=op.f('fk_drillcore_drilling_method_uri_concept'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_drillcore')),
    sa.UniqueConstraint('deposit_id', 'name', name=op.f('uq_drillcore_deposit_id_name'))
    )
    op.create_geospatial_index('idx_drillcore_collar', 'drillcore', ['collar'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_geospatial_index('idx_drillcore_trace', 'drillcore', ['trace'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_index(op.f('ix_drillcore_deposit_id'), 'drillcore', ['deposit_id'], unique=False)
    op.create_index(op.f('ix_drillcore_drilling_method_uri'), 'drillcore', ['drilling_method_uri'], unique=False)
    op.create_geospatial_table('plug',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('drillcore_id', sa.BigInteger(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('from_m', sa.Double(), nullable=False),
    sa.Column('to_m', sa.Double(), nullable=False),
    sa.Column('sample_type_uri', sa.Text(), nullable=False),
    sa.Column('lithology_uri', sa.Text(), nullable=True),
    sa.Column('preparation', sa.Text(), nullable=True),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('position', Geometry(geometry_type='POINTZ', srid=4326, dimension=3, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("name <> ''", name=op.f('ck_plug_name_not_empty')),
    sa.CheckConstraint('from_m < to_m', name=op.f('ck_plug_from_before_to')),
    sa.CheckConstraint('from_m >= 0', name=op.f('ck_plug_from_not_negative')),
    sa.ForeignKeyConstraint(['drillcore_id'], ['drillcore.id'], name=op.f('fk_plug_drillcore_id_drillcore'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['lithology_uri'], ['concept.uri'], name=op.f('fk_plug_lithology_uri_concept'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['sample_type_uri'], ['concept.uri'], name=op.f('fk_plug_sample_type_uri_concept'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_plug')),
    sa.UniqueConstraint('drillcore_id', 'name', name=op.f('uq_plug_drillcore_id_name'))
    )
    op.create_geospatial_index('idx_plug_position', 'plug', ['position'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_index('ix_plug_depth', 'plug', ['from_m', 'to_m'], unique=False)
    op.create_index(op.f('ix_plug_drillcore_id'), 'plug', ['drillcore_id'], unique=False)
    op.create_index(op.f('ix_plug_lithology_uri'), 'plug', ['lithology_uri'], unique=False)
    op.create_index(op.f('ix_plug_sample_type_uri'), 'plug', ['sample_type_uri'], unique=False)
    op.create_table('survey_station',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('drillcore_id', sa.BigInteger(), nullable=False),
    sa.Column('depth_m', sa.Double(), nullable=False),
    sa.Column('dip', sa.Double(), nullable=False),
    sa.Column('azimuth', sa.Double(), nullable=False),
    sa.CheckConstraint('azimuth IS NULL OR (azimuth >= 0 AND azimuth < 360)', name=op.f('ck_survey_station_azimuth_range')),
    sa.CheckConstraint('depth_m >= 0', name=op.f('ck_survey_station_depth_not_negative')),
    sa.CheckConstraint('dip IS NULL OR (dip >= -90 AND dip <= 90)', name=op.f('ck_survey_station_dip_range')),
    sa.ForeignKeyConstraint(['drillcore_id'], ['drillcore.id'], name=op.f('fk_survey_station_drillcore_id_drillcore'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_survey_station')),
    sa.UniqueConstraint('drillcore_id', 'depth_m', name=op.f('uq_survey_station_drillcore_id_depth_m'))
    )
    op.create_index('ix_survey_station_depth_m', 'survey_station', ['depth_m'], unique=False)
    op.create_index(op.f('ix_survey_station_drillcore_id'), 'survey_station', ['drillcore_id'], unique=False)
    op.create_table('image',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('plug_id', sa.BigInteger(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('store_uri', sa.Text(), nullable=False),
    sa.Column('array_paths', postgresql.ARRAY(sa.Text()), nullable=False),
    sa.Column('shape', postgresql.ARRAY(sa.Integer()), nullable=False),
    sa.Column('chunks', postgresql.ARRAY(sa.Integer()), nullable=False),
    sa.Column('dtype', sa.Text(), nullable=False),
    sa.Column('pixel_size_um', sa.Double(), nullable=False),
    sa.Column('modality_uri', sa.Text(), nullable=False),
    sa.Column('band_names', postgresql.ARRAY(sa.Text()), server_default='{}', nullable=False),
    sa.Column('band_wavelengths_nm', postgresql.ARRAY(sa.REAL()), nullable=True),
    sa.Column('checksum_sha256', sa.Text(), nullable=False),
    sa.Column('source_name', sa.Text(), nullable=True),
    sa.Column('depth_axis', sa.Text(), nullable=True),
    sa.Column('depth_top_m', sa.Double(), nullable=True),
    sa.Column('depth_bottom_m', sa.Double(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("(depth_axis IS NULL AND depth_top_m IS NULL AND depth_bottom_m IS NULL) OR (depth_axis IN ('x', 'y') AND depth_top_m >= 0 AND depth_top_m < depth_bottom_m)", name=op.f('ck_image_depth_registration')),
    sa.CheckConstraint('array_length(chunks, 1) = 3', name=op.f('ck_image_chunks_cyx')),
    sa.CheckConstraint('array_length(shape, 1) = 3', name=op.f('ck_image_shape_cyx')),
    sa.CheckConstraint('pixel_size_um > 0', name=op.f('ck_image_pixel_size_positive')),
    sa.ForeignKeyConstraint(['modality_uri'], ['concept.uri'], name=op.f('fk_image_modality_uri_concept'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['plug_id'], ['plug.id'], name=op.f('fk_image_plug_id_plug'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_image')),
    sa.UniqueConstraint('plug_id', 'checksum_sha256', name=op.f('uq_image_plug_id_checksum_sha256')),
    sa.UniqueConstraint('plug_id', 'name', name=op.f('uq_image_plug_id_name'))
    )
    op.create_index(op.f('ix_image_modality_uri'), 'image', ['modality_uri'], unique=False)
    op.create_index(op.f('ix_image_plug_id'), 'image', ['plug_id'], unique=False)
    op.create_table('segmentation_run',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('image_id', sa.BigInteger(), nullable=False),
    sa.Column('name', sa.Text(), server_default='default', nullable=False),
    sa.Column('model_path', sa.Text(), nullable=True),
    sa.Column('model_sha256', sa.Text(), nullable=True),
    sa.Column('feature_config', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
    sa.Column('parameters', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
    sa.Column('software_version', sa.Text(), nullable=False),
    sa.Column('input_checksum', sa.Text(), nullable=True),
    sa.Column('roxel_size', sa.Integer(), server_default='16', nullable=False),
    sa.Column('status', sa.Text(), server_default='running', nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('running', 'complete', 'failed')", name=op.f('ck_segmentation_run_status')),
    sa.CheckConstraint('finished_at IS NULL OR finished_at >= started_at', name=op.f('ck_segmentation_run_times_order')),
    sa.CheckConstraint('roxel_size > 0', name=op.f('ck_segmentation_run_roxel_size_positive')),
    sa.ForeignKeyConstraint(['image_id'], ['image.id'], name=op.f('fk_segmentation_run_image_id_image'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_segmentation_run')),
    sa.UniqueConstraint('image_id', 'name', name=op.f('uq_segmentation_run_image_id_name'))
    )
    op.create_index(op.f('ix_segmentation_run_image_id'), 'segmentation_run', ['image_id'], unique=False)
    op.create_geospatial_table('grain',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('run_id', sa.BigInteger(), nullable=False),
    sa.Column('label', sa.BigInteger(), nullable=False),
    sa.Column('mineral_id', sa.Integer(), nullable=False),
    sa.Column('outline', Geometry(geometry_type='POLYGON', dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.Column('centroid_x_um', sa.REAL(), nullable=False),
    sa.Column('centroid_y_um', sa.REAL(), nullable=False),
    sa.Column('area_um2', sa.REAL(), nullable=False),
    sa.Column('perimeter_um', sa.REAL(), nullable=False),
    sa.Column('ecd_um', sa.REAL(), nullable=False),
    sa.Column('major_axis_um', sa.REAL(), nullable=False),
    sa.Column('minor_axis_um', sa.REAL(), nullable=False),
    sa.Column('orientation_deg', sa.REAL(), nullable=False),
    sa.Column('aspect_ratio', sa.REAL(), nullable=False),
    sa.Column('solidity', sa.REAL(), nullable=False),
    sa.Column('form_factor', sa.REAL(), nullable=False),
    sa.Column('roundness', sa.REAL(), nullable=False),
    sa.Column('feret_max_um', sa.REAL(), nullable=False),
    sa.Column('feret_min_um', sa.REAL(), nullable=False),
    sa.Column('mean_probability', sa.REAL(), nullable=True),
    sa.Column('touches_border', sa.Boolean(), nullable=False),
    sa.Column('chunk_keys', postgresql.ARRAY(sa.Text()), nullable=False),
    sa.CheckConstraint('area_um2 > 0', name=op.f('ck_grain_area_positive')),
    sa.CheckConstraint('mean_probability IS NULL OR (mean_probability >= 0 AND mean_probability <= 1)', name=op.f('ck_grain_probability_range')),
    sa.CheckConstraint('solidity > 0 AND solidity <= 1.000001', name=op.f('ck_grain_solidity_range')),
    sa.ForeignKeyConstraint(['mineral_id'], ['concept.id'], name=op.f('fk_grain_mineral_id_concept'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['run_id'], ['segmentation_run.id'], name=op.f('fk_grain_run_id_segmentation_run'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_grain')),
    sa.UniqueConstraint('run_id', 'label', name=op.f('uq_grain_run_id_label'))
    )
    op.create_geospatial_index('idx_grain_outline', 'grain', ['outline'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_index('ix_grain_area_um2', 'grain', ['area_um2'], unique=False)
    op.create_index(op.f('ix_grain_mineral_id'), 'grain', ['mineral_id'], unique=False)
    op.create_index(op.f('ix_grain_run_id'), 'grain', ['run_id'], unique=False)
    op.create_table('rock',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('plug_id', sa.BigInteger(), nullable=False),
    sa.Column('run_id', sa.BigInteger(), nullable=True),
    sa.Column('lithology_uri', sa.Text(), nullable=True),
    sa.Column('lithology_source', sa.Text(), nullable=True),
    sa.Column('grain_size', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
    sa.Column('association', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
    sa.Column('liberation', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
    sa.Column('surface_area', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("lithology_source IS NULL OR lithology_source IN ('user', 'rule')", name=op.f('ck_rock_lithology_source')),
    sa.ForeignKeyConstraint(['lithology_uri'], ['concept.uri'], name=op.f('fk_rock_lithology_uri_concept'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['plug_id'], ['plug.id'], name=op.f('fk_rock_plug_id_plug'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['run_id'], ['segmentation_run.id'], name=op.f('fk_rock_run_id_segmentation_run'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rock')),
    sa.UniqueConstraint('plug_id', 'run_id', name=op.f('uq_rock_plug_id_run_id'), postgresql_nulls_not_distinct=True)
    )
    op.create_index(op.f('ix_rock_lithology_uri'), 'rock', ['lithology_uri'], unique=False)
    op.create_index(op.f('ix_rock_plug_id'), 'rock', ['plug_id'], unique=False)
    op.create_index(op.f('ix_rock_run_id'), 'rock', ['run_id'], unique=False)
    op.create_table('run_class',
    sa.Column('run_id', sa.BigInteger(), nullable=False),
    sa.Column('class_index', sa.SmallInteger(), nullable=False),
    sa.Column('concept_uri', sa.Text(), nullable=False),
    sa.CheckConstraint('class_index >= 0', name=op.f('ck_run_class_index_not_negative')),
    sa.ForeignKeyConstraint(['concept_uri'], ['concept.uri'], name=op.f('fk_run_class_concept_uri_concept'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['run_id'], ['segmentation_run.id'], name=op.f('fk_run_class_run_id_segmentation_run'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', 'class_index', name=op.f('pk_run_class')),
    sa.UniqueConstraint('run_id', 'concept_uri', name=op.f('uq_run_class_run_id_concept_uri'))
    )
    op.create_index(op.f('ix_run_class_concept_uri'), 'run_class', ['concept_uri'], unique=False)
    op.create_table('rock_constituent',
    sa.Column('rock_id', sa.BigInteger(), nullable=False),
    sa.Column('mineral_uri', sa.Text(), nullable=False),
    sa.Column('role_uri', sa.Text(), nullable=True),
    sa.Column('proportion_area', sa.Double(), nullable=False),
    sa.Column('proportion_wt', sa.Double(), nullable=True),
    sa.CheckConstraint('proportion_area IS NULL OR (proportion_area >= 0 AND proportion_area <= 1)', name=op.f('ck_rock_constituent_proportion_area_range')),
    sa.CheckConstraint('proportion_wt IS NULL OR (proportion_wt >= 0 AND proportion_wt <= 1)', name=op.f('ck_rock_constituent_proportion_wt_range')),
    sa.ForeignKeyConstraint(['mineral_uri'], ['concept.uri'], name=op.f('fk_rock_constituent_mineral_uri_concept'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['rock_id'], ['rock.id'], name=op.f('fk_rock_constituent_rock_id_rock'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['role_uri'], ['concept.uri'], name=op.f('fk_rock_constituent_role_uri_concept'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('rock_id', 'mineral_uri', name=op.f('pk_rock_constituent'))
    )
    op.create_index(op.f('ix_rock_constituent_mineral_uri'), 'rock_constituent', ['mineral_uri'], unique=False)
    op.create_index(op.f('ix_rock_constituent_role_uri'), 'rock_constituent', ['role_uri'], unique=False)
    op.create_geospatial_table('roxel',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('run_id', sa.BigInteger(), nullable=False),
    sa.Column('row', sa.Integer(), nullable=False),
    sa.Column('col', sa.Integer(), nullable=False),
    sa.Column('composition', postgresql.ARRAY(sa.REAL()), nullable=False),
    sa.Column('dominant_class_id', sa.Integer(), nullable=False),
    sa.Column('dominant_fraction', sa.REAL(), nullable=False),
    sa.Column('dominant_grain_id', sa.BigInteger(), nullable=True),
    sa.Column('depth_m', sa.Double(), nullable=True),
    sa.Column('position', Geometry(geometry_type='POINTZ', srid=4326, dimension=3, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.CheckConstraint('0 <= ALL(composition) AND 1 >= ALL(composition)', name=op.f('ck_roxel_composition_range')),
    sa.CheckConstraint('dominant_fraction IS NULL OR (dominant_fraction >= 0 AND dominant_fraction <= 1)', name=op.f('ck_roxel_fraction_range')),
    sa.CheckConstraint('row >= 0 AND col >= 0', name=op.f('ck_roxel_cell_not_negative')),
    sa.ForeignKeyConstraint(['dominant_class_id'], ['concept.id'], name=op.f('fk_roxel_dominant_class_id_concept'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['dominant_grain_id'], ['grain.id'], name=op.f('fk_roxel_dominant_grain_id_grain'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['run_id'], ['segmentation_run.id'], name=op.f('fk_roxel_run_id_segmentation_run'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_roxel')),
    sa.UniqueConstraint('run_id', 'row', 'col', name=op.f('uq_roxel_run_id_row_col'))
    )
    op.create_geospatial_index('idx_roxel_position', 'roxel', ['position'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_index('ix_roxel_class_depth', 'roxel', ['dominant_class_id', 'depth_m'], unique=False)
    op.create_index('ix_roxel_depth_m', 'roxel', ['depth_m'], unique=False)
    op.create_index(op.f('ix_roxel_dominant_grain_id'), 'roxel', ['dominant_grain_id'], unique=False)
    ddl.install(op.execute)


def downgrade() -> None:
    ddl.uninstall(op.execute)
    op.drop_index(op.f('ix_roxel_dominant_grain_id'), table_name='roxel')
    op.drop_index('ix_roxel_depth_m', table_name='roxel')
    op.drop_index('ix_roxel_class_depth', table_name='roxel')
    op.drop_geospatial_index('idx_roxel_position', table_name='roxel', postgresql_using='gist', column_name='position')
    op.drop_geospatial_table('roxel')
    op.drop_index(op.f('ix_rock_constituent_role_uri'), table_name='rock_constituent')
    op.drop_index(op.f('ix_rock_constituent_mineral_uri'), table_name='rock_constituent')
    op.drop_table('rock_constituent')
    op.drop_index(op.f('ix_run_class_concept_uri'), table_name='run_class')
    op.drop_table('run_class')
    op.drop_index(op.f('ix_rock_run_id'), table_name='rock')
    op.drop_index(op.f('ix_rock_plug_id'), table_name='rock')
    op.drop_index(op.f('ix_rock_lithology_uri'), table_name='rock')
    op.drop_table('rock')
    op.drop_index(op.f('ix_grain_run_id'), table_name='grain')
    op.drop_index(op.f('ix_grain_mineral_id'), table_name='grain')
    op.drop_index('ix_grain_area_um2', table_name='grain')
    op.drop_geospatial_index('idx_grain_outline', table_name='grain', postgresql_using='gist', column_name='outline')
    op.drop_geospatial_table('grain')
    op.drop_index(op.f('ix_segmentation_run_image_id'), table_name='segmentation_run')
    op.drop_table('segmentation_run')
    op.drop_index(op.f('ix_image_plug_id'), table_name='image')
    op.drop_index(op.f('ix_image_modality_uri'), table_name='image')
    op.drop_table('image')
    op.drop_index(op.f('ix_survey_station_drillcore_id'), table_name='survey_station')
    op.drop_index('ix_survey_station_depth_m', table_name='survey_station')
    op.drop_table('survey_station')
    op.drop_index(op.f('ix_plug_sample_type_uri'), table_name='plug')
    op.drop_index(op.f('ix_plug_lithology_uri'), table_name='plug')
    op.drop_index(op.f('ix_plug_drillcore_id'), table_name='plug')
    op.drop_index('ix_plug_depth', table_name='plug')
    op.drop_geospatial_index('idx_plug_position', table_name='plug', postgresql_using='gist', column_name='position')
    op.drop_geospatial_table('plug')
    op.drop_index(op.f('ix_drillcore_drilling_method_uri'), table_name='drillcore')
    op.drop_index(op.f('ix_drillcore_deposit_id'), table_name='drillcore')
    op.drop_geospatial_index('idx_drillcore_trace', table_name='drillcore', postgresql_using='gist', column_name='trace')
    op.drop_geospatial_index('idx_drillcore_collar', table_name='drillcore', postgresql_using='gist', column_name='collar')
    op.drop_geospatial_table('drillcore')
    op.drop_index(op.f('ix_deposit_commodity_commodity_uri'), table_name='deposit_commodity')
    op.drop_table('deposit_commodity')
    op.drop_index(op.f('ix_deposit_occurrence_type_uri'), table_name='deposit')
    op.drop_index(op.f('ix_deposit_deposit_model_uri'), table_name='deposit')
    op.drop_geospatial_index('idx_deposit_footprint', table_name='deposit', postgresql_using='gist', column_name='footprint')
    op.drop_geospatial_table('deposit')
    op.drop_index(op.f('ix_concept_broader_broader_uri'), table_name='concept_broader')
    op.drop_table('concept_broader')
    op.drop_index(op.f('ix_concept_scheme'), table_name='concept')
    op.drop_index('ix_concept_notation_lower', table_name='concept')
    op.drop_table('concept')
    op.drop_table('concept_scheme')
